"""The ``deploy`` command line.

Every failure a user can fix prints one line, ``error: ...``, and exits with status 2; a validation
that runs but finds outputs out of tolerance exits with status 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tdeploy.errors import TdeployError


def _parse_size(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.lower().replace("*", "x").split("x")]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size: write HxW (e.g. 224x224) or one number") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) <= 0:
        raise click.BadParameter(f"{text!r} is not a size: write HxW (e.g. 224x224) or one number")
    return parts[0], parts[1]


def _parse_settings(settings: tuple[str, ...]) -> dict:
    """``("depths=(2,2,6,2)", "norm_first=True", "name=x")`` -> {"depths": (2, 2, 6, 2), ...}."""
    import ast

    out = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise click.BadParameter(f"{item!r}: write --set KEY=VALUE, e.g. --set num_classes=10")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(p) for p in _csv(text)]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give comma-separated integers, e.g. 1,8") from None


def _backends(text: str) -> list[str]:
    from tdeploy.deploy.runners import BACKENDS

    names = _csv(text)
    for n in names:
        if n not in BACKENDS:
            raise click.BadParameter(f"unknown backend {n!r}: choose from {', '.join(BACKENDS)}")
    return names


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tdeploy")
def cli() -> None:
    """tdeploy: attention models from PyTorch to ONNX and TensorRT engines."""


@cli.command("list")
@click.argument("family", required=False)
def list_cmd(family: str | None) -> None:
    """List model variants (optionally of one FAMILY) and the family aliases."""
    from tdeploy.models import get_entry, list_families, list_models

    defaults = list_families()
    if family and family not in defaults:
        get_entry(family)  # raises with the close names
    for name in list_models(family):
        entry = get_entry(name)
        alias = [f for f, d in defaults.items() if d == name]
        mark = f"  (= {alias[0]})" if alias else ""
        click.echo(f"{name:<26} {entry.family:<12} {entry.description}{mark}")


@cli.command()
@click.argument("model")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="State dict (.pth/.pt/.safetensors) to load.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Output folder [artifacts/<variant>].")
@click.option("--opset", type=int, default=None, help="ONNX opset [18].")
@click.option("--dynamic-batch/--static", default=True, help="Dynamic batch axis [dynamic].")
@click.option("--dynamic-size/--static-size", default=True, help="Dynamic height/width for image models [dynamic].")
@click.option("--size", "size", default=None, help="Export (example) size HxW [the variant's training size].")
@click.option("--no-plugins", is_flag=True, help="Standard ONNX ops only (custom attention nodes inlined).")
@click.option("--no-check", is_flag=True, help="Skip the checker and the ONNX Runtime vs PyTorch check.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32", show_default=True,
              help="Graph precision: fp16 (FP32 islands) or int8 (symmetric Q/DQ, needs --calib).")
@click.option("--io-dtype", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="Dtype of float inputs/outputs of an fp16 graph.")
@click.option("--calib", type=click.Path(), default=None,
              help="INT8 calibration data: a folder of images (vision) or a file of token-id lines (transformer).")
@click.option("--calib-method", type=click.Choice(["entropy", "percentile", "max"]), default="entropy",
              show_default=True, help="INT8 activation range calibration.")
@click.option("--calib-samples", type=int, default=64, show_default=True, help="INT8 calibration samples at most.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override a config field of the variant (repeatable), e.g. --set num_classes=10 "
                   "--set src_vocab_size=19214; recorded in the sidecar.")
def export(model, checkpoint, out_dir, opset, dynamic_batch, dynamic_size, size, no_plugins, no_check, precision,
           io_dtype, calib, calib_method, calib_samples, settings) -> None:
    """Export MODEL (a variant or family name) to DIR/model.onnx + DIR/model.json."""
    from tdeploy.export import DEFAULT_OPSET, ExportOptions
    from tdeploy.export import export as do_export
    from tdeploy.export.onnx_export import build_model

    overrides = _parse_settings(settings)
    built = build_model(model, checkpoint, overrides)
    variant = built.variant_name
    out = Path(out_dir) if out_dir else Path("artifacts") / variant
    options = ExportOptions(
        opset=opset or DEFAULT_OPSET, dynamic_batch=dynamic_batch, dynamic_size=dynamic_size,
        plugins=not no_plugins, check=not no_check, size=_parse_size(size) if size else None,
        precision=precision, io_dtype=io_dtype, calib=calib, calib_method=calib_method, calib_samples=calib_samples,
    )
    with _status(f"exporting {variant}"):
        sidecar = do_export(model, out, checkpoint=checkpoint, options=options, model=built, **overrides)
    for graph in sidecar.graphs.values():
        click.echo(f"wrote {out / graph.file}  (sha256 {graph.sha256[:12]}, custom ops: "
                   f"{', '.join(graph.custom_ops) or 'none'})")
    click.echo(f"wrote {out / 'model.json'}")


@cli.command()
@click.argument("artifact", type=click.Path())
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Checkpoint for the PyTorch reference.")
@click.option("--backends", default="ort", show_default=True, help="Comma-separated: ort, trt.")
@click.option("--batch", default=1, show_default=True, type=int)
@click.option("--size", "sizes", multiple=True, help="HxW to check (repeatable) [export size + the spec's].")
@click.option("--samples", default=1, show_default=True, type=int, help="Seeded inputs per size.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), help="Folder for report.{json,md,html}.")
@click.option("--threads", default=0, type=int, help="CPU threads for ONNX Runtime/PyTorch [all].")
@click.option("--save-outputs", type=click.Path(dir_okay=False),
              help="Save PyTorch's outputs as Polygraphy RunResults JSON (with --save-inputs, for `polygraphy run "
                   "--load-inputs ... --load-outputs ...` on a TensorRT machine).")
@click.option("--save-inputs", type=click.Path(dir_okay=False), help="Save the inputs as Polygraphy JSON.")
def validate(artifact, checkpoint, backends, batch, sizes, samples, report_dir, threads, save_outputs,
             save_inputs) -> None:
    """Compare ARTIFACT's backends with PyTorch; exit 1 when anything is out of tolerance."""
    from tdeploy.deploy.artifact import open_artifact
    from tdeploy.deploy.report import write_validation_report
    from tdeploy.deploy.validate import validate as run_validation

    art = open_artifact(artifact)
    refs: list = []
    with _status(f"validating {art.sidecar.variant}"):
        report = run_validation(
            art, backends=_backends(backends), checkpoint=checkpoint, batch=batch,
            sizes=[_parse_size(s) for s in sizes] or None, samples=samples, threads=threads,
            reference_outputs=refs,
        )
    out = Path(report_dir) if report_dir else art.root / "report"
    for path in write_validation_report(report, out):
        click.echo(f"wrote {path}")
    if save_outputs or save_inputs:
        from tdeploy.deploy.polygraphy_io import save_polygraphy

        save_polygraphy(art, report, refs, save_inputs, save_outputs, batch=batch, samples=samples)
    click.echo(report.summary())
    sys.exit(0 if report.passed else 1)


@cli.command()
@click.argument("artifact", type=click.Path())
@click.option("--backends", default="torch,ort", show_default=True)
@click.option("--batch", "batches", default="1,8", show_default=True, help="Comma-separated batch sizes.")
@click.option("--threads", default=2, show_default=True, type=int)
@click.option("--warmup", default=5, show_default=True, type=int)
@click.option("--iters", default=30, show_default=True, type=int)
@click.option("--size", default=None, help="HxW [export size].")
@click.option("--checkpoint", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Folder for bench.{json,md} [ARTIFACT/bench].")
def bench(artifact, backends, batches, threads, warmup, iters, size, checkpoint, out_dir) -> None:
    """Latency (p50/p90/p99), throughput and speed-up vs PyTorch eager, measured in one run."""
    from tdeploy.deploy.artifact import open_artifact
    from tdeploy.deploy.bench import bench as run_bench
    from tdeploy.export.atomic import atomic_write_text

    art = open_artifact(artifact)
    report = run_bench(art, backends=_backends(backends), batches=_ints(batches), threads=threads, warmup=warmup,
                       iters=iters, size=_parse_size(size) if size else None, checkpoint=checkpoint)
    out = Path(out_dir) if out_dir else art.root / "bench"
    atomic_write_text(out / "bench.json", json.dumps(report.to_json(), indent=2) + "\n")
    atomic_write_text(out / "bench.md", report.markdown())
    click.echo(report.markdown())
    click.echo(f"wrote {out / 'bench.json'}, {out / 'bench.md'}")


@cli.command("inspect")
@click.argument("artifact", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect_cmd(artifact, as_json) -> None:
    """Inputs, outputs, opset, op histogram, custom nodes and sidecar of ARTIFACT."""
    from tdeploy.deploy.inspect import describe_onnx, describe_text
    from tdeploy.export.checks import load_onnx

    path = Path(artifact)
    if path.is_file() and path.suffix == ".onnx" and not (path.parent / "model.json").is_file():
        load_onnx(path, load_weights=False)
        infos, sidecar = [describe_onnx(path)], None
    else:
        from tdeploy.deploy.artifact import open_artifact

        art = open_artifact(path)
        files = [art.onnx] if path.is_file() else [art.root / g.file for g in art.sidecar.graphs.values()]
        infos, sidecar = [describe_onnx(f) for f in files], art.sidecar
    if as_json:
        from dataclasses import asdict

        click.echo(json.dumps({"graphs": infos, "sidecar": asdict(sidecar) if sidecar else None}, indent=2,
                              default=str))
        return
    for info in infos:
        click.echo(describe_text(info))
    if sidecar:
        ck = f"{sidecar.checkpoint} (sha256 {sidecar.checkpoint_sha256[:12]})" if sidecar.checkpoint else "none (seeded random weights)"
        click.echo(f"sidecar: {sidecar.variant} ({sidecar.family}), precision {sidecar.precision}, opset "
                   f"{sidecar.opset}, plugins {'on' if sidecar.plugins else 'off'}, dynamic batch "
                   f"{sidecar.dynamic_batch}, dynamic size {sidecar.dynamic_size}, checkpoint {ck}, "
                   f"tdeploy {sidecar.tdeploy_version}")


@cli.command("build-engine")
@click.argument("artifact", type=click.Path())
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Engine file [ARTIFACT/model.engine].")
@click.option("--shapes", multiple=True, help="input:min/opt/max, e.g. pixel_values:1x3x224x224/8x3x224x224/32x3x384x384")
@click.option("--workspace", type=float, default=None, help="Workspace limit in GB.")
@click.option("--timing-cache", type=click.Path(dir_okay=False))
@click.option("--opt-level", type=click.IntRange(0, 5), default=None, help="Builder optimisation level (0-5).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Reuse an engine built with the same key.")
def build_engine(artifact, out_file, shapes, workspace, timing_cache, opt_level, cache_dir) -> None:
    """Compile ARTIFACT's ONNX into a TensorRT engine (needs TensorRT >= 10.9 and an NVIDIA GPU)."""
    from tdeploy.deploy.artifact import open_artifact
    from tdeploy.deploy.engine import BuildOptions
    from tdeploy.deploy.engine import build_engine as do_build

    art = open_artifact(artifact)
    options = BuildOptions(shapes=list(shapes), workspace_gb=workspace, timing_cache=timing_cache,
                           opt_level=opt_level, cache_dir=cache_dir)
    path = do_build(art, out=Path(out_file) if out_file else None, options=options)
    click.echo(f"wrote {path}")


# Commands that live beside the feature they drive: "module:attribute" of a click command, each
# registered when its module exists (families and backends add theirs here).
_COMMAND_MODULES = (
    "tdeploy.deploy.commands.run:run",
    "tdeploy.deploy.commands.generate:generate",
    "tdeploy.deploy.commands.doctor:doctor",
)


def _register_commands() -> None:
    import importlib

    for target in _COMMAND_MODULES:
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        cli.add_command(getattr(module, attr))


_register_commands()


class _status:
    """A one-line 'working...' note on stderr for steps that take a while (no-op when not a TTY)."""

    def __init__(self, text: str):
        self.text = text

    def __enter__(self):
        if sys.stderr.isatty():
            click.echo(f"{self.text} ...", err=True)
        return self

    def __exit__(self, *exc):
        return False


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="deploy", standalone_mode=False)
    except TdeployError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted: nothing was written", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
