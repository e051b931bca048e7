"""torch.nn.Module -> ONNX artifact folder (``model.onnx`` + ``model.json``).

The dynamo exporter (``torch.onnx.export(dynamo=True)``) traces the model with symbolic batch and
spatial sizes taken from the model's :class:`ExportSpec`; tdeploy's attention ops become one custom
node each plus a model-local function holding their reference math (see plugins/). With
``plugins=False`` the functions are inlined, leaving standard ONNX ops only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx.inliner
import torch
from torch import nn
from torch.export import Dim

import tdeploy
from tdeploy.artifact.atomic import staged_dir
from tdeploy.artifact.hashing import sha256_file
from tdeploy.artifact.onnx_file import save_onnx
from tdeploy.artifact.sidecar import SIDECAR_NAME, GraphInfo, Sidecar
from tdeploy.errors import TdeployError
from tdeploy.export.checks import check_against_torch, check_model
from tdeploy.export.graph_passes import rename_dynamic_dims
from tdeploy.models import ExportSpec, InputSpec, create_model, get_entry
from tdeploy.plugins import DOMAIN, custom_translation_table
from tdeploy.plugins.onnx_functions import finalize_plugin_nodes

DEFAULT_OPSET = 18
# The largest spatial size (pixels) the exported graph promises to handle (torch.export needs a bound).
MAX_IMAGE_SIDE = 4096
# Seed of the random initialisation of models exported without a checkpoint.
INIT_SEED = 0


@dataclass
class ExportOptions:
    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = True
    dynamic_size: bool = True
    plugins: bool = True  # False: --no-plugins, custom nodes inlined into standard ops
    check: bool = True  # onnx.checker + ORT vs PyTorch at the example shape
    size: tuple[int, int] | None = None  # example (H, W) for image inputs; default: the spec's
    precision: str = "fp32"  # fp32 | fp16 (FP32 islands) | int8 (Q/DQ): see tdeploy/export/precision
    io_dtype: str = "fp32"  # fp16: float graph inputs/outputs in FP16 (precision fp16 only)
    calib: str | Path | None = None  # int8: a folder of images, or a file of token-id lines
    calib_method: str = "entropy"  # int8: entropy | percentile | max
    calib_samples: int = 64  # int8: calibration samples (images / token lines) used at most
    verbose: bool = False  # let torch.onnx / torch.export / onnxscript print what they print (deploy -v)


def example_inputs(spec: ExportSpec, size: tuple[int, int] | None = None, seed: int = 0, batch: int | None = None):
    """Seeded inputs (torch tensors, in spec order) at the spec's example shape or (H, W) = size."""
    gen = torch.Generator().manual_seed(seed)
    tensors = []
    for inp in spec.inputs:
        shape = list(inp.example)
        if batch is not None and inp.shape and inp.shape[0] == "batch":
            shape[0] = batch
        if size is not None and inp.kind == "image":
            shape[-2:] = size
        tensors.append(random_input(inp, shape, gen, spec.mean, spec.std))
    return tensors


def random_input(inp: InputSpec, shape, gen: torch.Generator, mean: tuple[float, ...] = (),
                 std: tuple[float, ...] = ()) -> torch.Tensor:
    if inp.kind == "image":  # (B, C, H, W) pixels in [0, 1], then the preprocessing the spec declares
        x = torch.rand(*shape, generator=gen)
        if mean and std:
            channels = (1, len(mean), 1, 1)
            return (x - torch.tensor(mean).view(channels)) / torch.tensor(std).view(channels)
        return x if inp.low >= 0 else inp.low + x * (inp.high - inp.low)  # none declared: the input's range
    if inp.kind == "tokens":
        high = int(inp.high)
        return torch.randint(int(max(inp.low, 0)), high, tuple(shape), generator=gen, dtype=torch.int64)
    if inp.kind == "mask":
        return torch.zeros(*shape, dtype=getattr(torch, inp.dtype))
    return torch.randn(*shape, generator=gen).to(getattr(torch, inp.dtype))


def dynamic_shapes_for(spec: ExportSpec, forward_args: list[str], options: ExportOptions) -> dict:
    """torch.export dynamic shapes from the spec's named axes (the same name -> the same Dim)."""
    dims: dict[str, object] = {}

    def dim(name: str, multiple: int):
        if name not in dims:
            if name in ("height", "width"):
                hi = MAX_IMAGE_SIDE // multiple
                lo = max(1, -(-spec.min_size // multiple))
                base = Dim(f"{name}_blocks" if multiple > 1 else name, min=lo, max=hi)
                dims[name] = base * multiple if multiple > 1 else base
            else:
                dims[name] = Dim(name, min=1, max=65536)
        return dims[name]

    shapes = {}
    for arg, inp in zip(forward_args, spec.inputs):
        axes = {}
        for axis, name in inp.dynamic_axes().items():
            if name == "batch" and not options.dynamic_batch:
                continue
            if name in ("height", "width") and not options.dynamic_size:
                continue
            axes[axis] = dim(name, spec.size_multiple if name in ("height", "width") else 1)
        shapes[arg] = axes or None
    return shapes


@contextlib.contextmanager
def _quiet_exporter(verbose: bool = False) -> Iterator[None]:
    """The dynamo exporter prints progress and warnings to stdout; keep the CLI's output ours (unless
    ``verbose``: then every exporter message shows, for finding out why an export fails)."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_graph(module: nn.Module, spec: ExportSpec, path: Path, options: ExportOptions,
                 calib_feeds: list | None = None, precision_report: dict | None = None) -> GraphInfo:
    """Export one graph to ``path``, run the checks, and describe it for the sidecar.

    ``calib_feeds``: INT8 calibration samples of this graph; ``precision_report`` (a dict) receives
    what the precision pass did.
    """
    import inspect

    forward_args = list(inspect.signature(module.forward).parameters)[: len(spec.inputs)]
    args = tuple(example_inputs(spec, options.size))
    dynamic = dynamic_shapes_for(spec, forward_args, options)
    if all(v is None for v in dynamic.values()):
        dynamic = None
    try:
        with torch.no_grad(), _quiet_exporter(options.verbose):
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,
                opset_version=options.opset,
                input_names=[i.name for i in spec.inputs],
                output_names=list(spec.outputs),
                dynamic_shapes=dynamic,
                custom_translation_table=custom_translation_table(),
                optimize=True,
                external_data=False,
            )
    except TdeployError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise TdeployError(f"torch.onnx.export failed for {type(module).__name__}: {first}") from exc
    model = program.model_proto
    rename_dynamic_dims(model, spec, options)
    model = finalize_plugin_nodes(model)
    if not options.plugins:
        model = onnx.inliner.inline_local_functions(model)
        del model.functions[:]
    model.producer_name = "tdeploy"
    model.producer_version = tdeploy.__version__
    if options.precision != "fp32":
        from tdeploy.export.precision import apply_precision

        model, report = apply_precision(model, options, calib_feeds, desc=f"calibrating {path.stem}")
        if precision_report is not None:
            precision_report.update(report)
    data = save_onnx(model, path)  # past 2 GiB the weights go to <graph>.onnx.data
    if options.check:
        check_model(path)
        check_against_torch(module, spec, path, args, options.precision)
    custom = sorted({f"{n.domain}::{n.op_type}" for n in onnx.load(str(path), load_external_data=False).graph.node
                     if n.domain == DOMAIN})
    return GraphInfo(file=path.name, sha256=sha256_file(path), spec=spec.to_json(), custom_ops=custom,
                     data_sha256=sha256_file(data) if data else None)


def export_graphs(model: nn.Module) -> dict[str, tuple[nn.Module, ExportSpec]]:
    """The graphs a model exports as: ``{"model": (model, spec)}`` unless it defines its own."""
    if hasattr(model, "export_graphs"):
        return model.export_graphs()
    return {"model": (model, model.export_spec())}


def build_model(name: str, checkpoint: str | Path | None, overrides: dict) -> nn.Module:
    """The model an artifact was (or will be) exported from.

    Without a checkpoint the weights are random but seeded (INIT_SEED), so ``deploy validate`` can
    rebuild the same model from the sidecar alone.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        return create_model(name, checkpoint=checkpoint, **overrides)


def export(
    name: str,
    out_dir: str | Path,
    *,
    checkpoint: str | Path | None = None,
    options: ExportOptions | None = None,
    model: nn.Module | None = None,
    **overrides,
) -> Sidecar:
    """Export a registered model (or ``model``, built by the caller) into ``out_dir``.

    Writes ``<graph>.onnx`` for each graph and ``model.json``, all or nothing.
    """
    options = options or ExportOptions()
    if model is None:
        model = build_model(name, checkpoint, overrides)
    entry = get_entry(getattr(model, "variant_name", name))
    if options.size is not None:
        for _, (_, spec) in export_graphs(model).items():
            if any(i.kind == "image" for i in spec.inputs) and (why := spec.check_image_size(*options.size)):
                raise TdeployError(f"{why} ({entry.name})")
    out_dir = Path(out_dir)
    graphs: dict[str, GraphInfo] = {}
    from tdeploy.export.precision import check_precision_options, prepare_calibration

    check_precision_options(options, export_graphs(model))
    calib = prepare_calibration(options, export_graphs(model))  # {graph: feeds} for int8, else {}
    reports: dict[str, dict] = {}
    with staged_dir(out_dir) as stage:
        for graph_name, (module, spec) in export_graphs(model).items():
            reports[graph_name] = {}
            graphs[graph_name] = export_graph(module.eval(), spec, stage / f"{graph_name}.onnx", options,
                                              calib.get(graph_name), reports[graph_name])
        sidecar = Sidecar(
            model=name,
            variant=entry.name,
            family=entry.family,
            graphs=graphs,
            opset=options.opset,
            plugins=options.plugins,
            dynamic_batch=options.dynamic_batch,
            dynamic_size=options.dynamic_size,
            checkpoint=str(Path(checkpoint).resolve()) if checkpoint else None,
            checkpoint_sha256=sha256_file(checkpoint) if checkpoint else None,
            overrides={k: v for k, v in overrides.items()},
            tdeploy_version=tdeploy.__version__,
            torch_version=torch.__version__,
            onnx_version=onnx.__version__,
            precision=options.precision,
            extra={"precision": reports} if options.precision != "fp32" else {},
        )
        (stage / SIDECAR_NAME).write_text(sidecar.to_json())
    return sidecar
