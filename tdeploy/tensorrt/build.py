"""``deploy build-engine``: an artifact's ONNX graphs -> TensorRT engines, strongly typed, one profile each.

Two runtimes (``runtimes.py``): datacenter TensorRT builds for the GPU it runs on; TensorRT-RTX builds
without a GPU for ``--compute-capability`` targets. Three plugin forms (``plugins.py``): the QDP AOT
plugins, the C++ plugin library, or the nodes' own ONNX functions. Precision lives in the ONNX graph
(no FP16/INT8 builder flags: TensorRT 11 and TensorRT-RTX have none). Each engine gets a sidecar
(``sidecar.py``) saying what it needs to run, and goes into ``--cache-dir`` by a key over everything
that decides it (``cache.py``). The decisions are pure functions tested on CPU; this module makes the
TensorRT calls.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import shlex
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import onnx.inliner

import tdeploy
from tdeploy.artifact.atomic import atomic_write_bytes
from tdeploy.artifact.folder import Artifact
from tdeploy.artifact.hashing import sha256_file
from tdeploy.errors import BackendUnavailable, TdeployError
from tdeploy.plugins.registry import DOMAIN, plugins_hash
from tdeploy.tensorrt.cache import cache_key, cached_engine, install_from_cache, store_in_cache
from tdeploy.tensorrt.kernels import attach_kernels, kernel_graph_path, write_kernel_graph
from tdeploy.tensorrt.logger import make_logger
from tdeploy.tensorrt.network import DUPLICATE_NODE_WARNING, layer_counts, parse_onnx
from tdeploy.tensorrt.plugins import PluginChoice, choose_plugins, plugin_library, register_plugins
from tdeploy.tensorrt.profile import Profile, derive_profile, format_profile, profile_to_json
from tdeploy.tensorrt.runtimes import (
    RTX_TARGETS,
    Runtime,
    capability_tuple,
    find_runtime,
    gpu_identity,
    gpu_problem,
    parse_compute_capabilities,
    probe,
    rtx_target_problem,
)
from tdeploy.tensorrt.sidecar import ENGINE_SIDECAR_SCHEMA, load_engine_sidecar, write_engine


@dataclass
class BuildOptions:
    shapes: list[str] = field(default_factory=list)  # "input:min/opt/max" overrides
    workspace_gb: float | None = None
    timing_cache: str | None = None  # datacenter TensorRT only (TensorRT-RTX's is a no-op)
    opt_level: int | None = None
    cache_dir: str | None = None
    runtime: str = "auto"  # auto | tensorrt | tensorrt-rtx
    compute_capabilities: list[str] = field(default_factory=list)  # TensorRT-RTX targets, e.g. ["8.9", "12.0"]
    plugins: str = "auto"  # auto | qdp | cpp | none
    plugin_library: str | None = None  # the C++ plugin library [build/cpp/libtdeploy_plugins.so]
    verbose: bool = False  # every TensorRT message on stderr (else warnings and errors)

    def key_fields(self) -> dict[str, Any]:
        """The options that change the engine itself (the timing cache and cache folder do not)."""
        return {"workspace_gb": self.workspace_gb, "opt_level": self.opt_level}


class EngineSet(list):
    """The engines of a multi-graph artifact (one per graph); prints as a comma-separated list."""

    def __str__(self) -> str:
        return ", ".join(str(p) for p in self)


@dataclass(frozen=True)
class Targets:
    """What the engine's kernels are compiled for."""

    capabilities: tuple[str, ...]  # e.g. ("8.9",); empty with default=True
    default: bool = False  # TensorRT-RTX's own default targets
    gpu: tuple[str, tuple[int, int]] | None = None  # the build GPU (datacenter TensorRT)

    def key(self) -> list[str]:
        return ["default"] if self.default else list(self.capabilities)

    def describe(self) -> str:
        if self.default:
            return "TensorRT-RTX's default targets (8.0, 8.6, 8.9, 12.0 and later)"
        return "sm " + ", ".join(self.capabilities)

    def archs(self) -> list[int]:
        """The targets as sorted numbers (89 for 8.9; [80] for the default ones): what kernels are compiled for."""
        caps = self.capabilities or ("8.0",)
        return sorted({major * 10 + minor for major, minor in map(capability_tuple, caps)})

    def min_cc(self) -> int:
        """The lowest target as one number (80 for 8.0): what PTX is compiled for."""
        return self.archs()[0]


# --- where the engines go ------------------------------------------------------------------------------
def engine_paths(artifact: Artifact, out: Path | None = None) -> dict[str, Path]:
    """graph -> engine file. One graph: ``out`` or ``ARTIFACT/<graph>.engine``. Several graphs
    (encoder/decoder): ``<graph>.engine`` each, in ``out``'s folder (or ``out`` itself when it has no
    suffix), else in the artifact folder, where the runner looks for them."""
    graphs = list(artifact.sidecar.graphs)
    if len(graphs) == 1:
        return {graphs[0]: Path(out) if out is not None else artifact.root / f"{graphs[0]}.engine"}
    if out is None:
        folder = artifact.root
    else:
        out = Path(out)
        folder = out if out.suffix == "" else out.parent
    return {g: folder / f"{g}.engine" for g in graphs}


def resolve_targets(runtime: Runtime, requested: list[str] | tuple[str, ...]) -> Targets:
    """The compute capabilities to build for; one-line refusals for ones the runtime cannot build."""
    wanted = parse_compute_capabilities(requested)
    if runtime.is_rtx:
        for cc in wanted:
            if why := rtx_target_problem(cc):
                raise TdeployError(f"--compute-capability {cc}: {why}")
        return Targets(tuple(wanted), default=not wanted)
    if problem := gpu_problem():
        rtx = "" if probe("tensorrt-rtx")[0] is None else "; TensorRT-RTX builds without one: --runtime tensorrt-rtx"
        raise BackendUnavailable(f"building with {runtime.label} needs an NVIDIA GPU: {problem}{rtx}")
    name, cc = gpu_identity()
    here = f"{cc[0]}.{cc[1]}"
    if wanted and wanted != [here]:
        raise TdeployError(f"--compute-capability {','.join(wanted)}: {runtime.label} builds for the GPU it runs on "
                           f"({name}, sm {here}); other targets need --runtime tensorrt-rtx")
    return Targets((here,), gpu=(name, cc))


def graph_has_plugin_nodes(artifact: Artifact, graph: str) -> bool:
    return any(op.startswith(f"{DOMAIN}::") for op in artifact.sidecar.graphs[graph].custom_ops)


def kernels_hash(form: str) -> str:
    """A hash over what decides the plugin kernels inside an engine of plugin ``form``: the plugins
    package and Triton (:func:`plugins_hash`), this layer's kernel-graph writer (cpp), and the PTX ISA
    the build machine's driver takes (qdp: the plugins cap the PTX at it)."""
    if form == "none":
        return plugins_hash()  # the ONNX functions come from the graph (its sha256); kept for the sidecar
    parts = [plugins_hash()]
    if form == "cpp":
        parts.append(sha256_file(Path(__file__).with_name("kernels.py")))
    if form == "qdp":
        from tdeploy.plugins.qdp import driver_ptx_version

        parts.append(f"ptx {driver_ptx_version()}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the command ---------------------------------------------------------------------------------------
def build_engine(artifact: Artifact, out: Path | None = None, options: BuildOptions | None = None) -> Path | EngineSet:
    """Build (or take from ``--cache-dir``) one engine per graph; the path, or an :class:`EngineSet`."""
    options = options or BuildOptions()
    # The profile is checked before anything else, so a typo in --shapes is reported on any machine.
    profiles = {g: derive_profile(artifact.sidecar, options.shapes, graph=g) for g in artifact.sidecar.graphs}
    runtime = find_runtime(options.runtime)
    targets = resolve_targets(runtime, options.compute_capabilities)
    has_nodes = any(graph_has_plugin_nodes(artifact, g) for g in artifact.sidecar.graphs)
    choice = choose_plugins(options.plugins, runtime, has_nodes=has_nodes,
                            library=plugin_library(options.plugin_library))
    if choice.note:
        _note(choice.note)
    if options.timing_cache and runtime.is_rtx:
        _note("--timing-cache: TensorRT-RTX keeps no timing cache (its kernels are compiled at first run); ignored")
    register_plugins(choice, runtime, target_cc=targets.min_cc())
    library_sha = sha256_file(choice.library) if choice.library else None
    p_hash = kernels_hash(choice.form)
    written = EngineSet()
    for graph, path in engine_paths(artifact, out).items():
        profile = profiles[graph]
        onnx_path = artifact.graph_path(graph)
        # open_artifact checked the file against this hash; the runner compares engines with it too.
        onnx_sha = artifact.sidecar.graphs[graph].sha256 or sha256_file(onnx_path)
        key = cache_key(onnx_sha, p_hash, runtime.name, runtime.version, targets.key(), profile,
                        artifact.sidecar.precision, options.key_fields(), choice.form, library_sha)
        sidecar = {
            "schema": ENGINE_SIDECAR_SCHEMA,
            "engine": path.name,
            "graph": graph,
            "variant": artifact.sidecar.variant,
            "family": artifact.sidecar.family,
            "runtime": {"name": runtime.name, "version": runtime.version},
            "targets": list(targets.capabilities),
            "targets_default": targets.default,
            "gpu": {"name": targets.gpu[0], "compute_capability": list(targets.gpu[1])} if targets.gpu else None,
            "profile": profile_to_json(profile),
            "precision": artifact.sidecar.precision,
            "onnx": {"file": onnx_path.name, "sha256": onnx_sha},
            "plugins_hash": p_hash,
            "plugin_form": choice.form,
            "plugin_library": {"file": str(choice.library), "sha256": library_sha} if choice.library else None,
            "builder_options": {**options.key_fields(), "timing_cache": options.timing_cache},
            "cache_key": key,
            "tdeploy_version": tdeploy.__version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        hit = cached_engine(options.cache_dir, key) if options.cache_dir else None
        if hit is not None:
            cached = load_engine_sidecar(hit)
            kept = {k: cached[k] for k in ("io", "layers", "warnings", "build_seconds") if k in cached}
            sidecar = install_from_cache(hit, path, {**cached, **sidecar, **kept, "from_cache": str(hit)})
            _note(f"{graph}: reused {hit} (same cache key)")
        else:
            _note(f"{graph}: building {onnx_path.name} with {runtime.label} for {targets.describe()}, "
                  f"plugins {choice.form}, profile {format_profile(profile)}")
            start = time.perf_counter()
            model_bytes = None
            if graph_has_plugin_nodes(artifact, graph) and choice.form == "none":
                model_bytes = inline_plugin_functions(onnx_path)
            elif graph_has_plugin_nodes(artifact, graph) and choice.form == "cpp":
                kernels_graph = kernel_graph_path(path)
                model_bytes = attach_plugin_kernels(onnx_path, targets, kernels_graph)
                sidecar["kernels_onnx"] = kernels_graph.name
            data, facts = _build_serialized(runtime, onnx_path, profile, options, targets, model_bytes, label=graph)
            sidecar.update(facts, build_seconds=round(time.perf_counter() - start, 2))
            write_engine(path, data, sidecar)
            if options.cache_dir:
                store_in_cache(options.cache_dir, key, path, sidecar)
        source = path.parent / sidecar["kernels_onnx"] if "kernels_onnx" in sidecar else onnx_path
        _note(f"{graph}: equivalent command: {trtexec_command(runtime, source, profile, path, choice, options)}")
        written.append(path)
    return written[0] if len(written) == 1 else written


def trtexec_command(runtime: Runtime, onnx_path: Path, profile: Profile, engine: Path, choice: PluginChoice,
                    options: BuildOptions) -> str:
    """The trtexec (or TensorRT-RTX's ``tensorrt_rtx``) command line that builds the same engine.

    With the QDP plugins there is none: trtexec cannot run Python plugin code at build time (it can run
    the engine: ``trtexec --loadEngine``); the line then says so.
    """
    if choice.form == "qdp":
        return (f"none: trtexec cannot build with Python (QDP) plugins; it runs the engine: "
                f"trtexec --loadEngine={shlex.quote(str(engine))}")
    tool = "tensorrt_rtx" if runtime.is_rtx else "trtexec"
    fmt = lambda s: "x".join(str(d) for d in s)  # noqa: E731
    shapes = {which: ",".join(f"{name}:{fmt(dims[i])}" for name, dims in profile.items())
              for i, which in enumerate(("min", "opt", "max"))}
    parts = [tool, f"--onnx={shlex.quote(str(onnx_path))}"]
    if not runtime.is_rtx:
        parts.append("--stronglyTyped")  # TensorRT-RTX networks are always strongly typed
    parts += [f"--minShapes={shapes['min']}", f"--optShapes={shapes['opt']}", f"--maxShapes={shapes['max']}"]
    if choice.form == "cpp":
        parts.append(f"--dynamicPlugins={shlex.quote(str(choice.library))}")
    if options.workspace_gb:
        parts.append(f"--memPoolSize=workspace:{int(options.workspace_gb * 1024)}M")
    if options.opt_level is not None:
        parts.append(f"--builderOptimizationLevel={options.opt_level}")
    parts.append(f"--saveEngine={shlex.quote(str(engine))}")
    return " ".join(parts)


def inline_plugin_functions(onnx_path: Path) -> bytes:
    """The graph with its model-local functions inlined by onnx (every call's nodes named apart)."""
    # External weights stay where they are: the parser resolves them beside onnx_path.
    model = onnx.load(str(onnx_path), load_external_data=False)
    inlined = onnx.inliner.inline_local_functions(model)
    del inlined.functions[:]
    return inlined.SerializeToString()


def attach_plugin_kernels(onnx_path: Path, targets: Targets, out: Path) -> bytes:
    """The graph with every tdeploy node carrying its kernels for ``targets`` (also written to ``out``)."""
    archs = targets.archs()
    model, count = attach_kernels(onnx.load(str(onnx_path), load_external_data=False), archs)
    write_kernel_graph(model, out, onnx_path.parent)
    _note(f"{onnx_path.name}: compiled the kernels of {count} attention nodes for sm {', '.join(map(str, archs))}")
    return model.SerializeToString()


def _build_serialized(runtime: Runtime, onnx_path: Path, profile: Profile, options: BuildOptions, targets: Targets,
                      model_bytes: bytes | None, *, label: str) -> tuple[bytes, dict[str, Any]]:
    trt = runtime.module
    logger = make_logger(trt, echo="verbose" if options.verbose else "warning")
    parsed = parse_onnx(runtime, onnx_path, logger, model_bytes=model_bytes)
    network = parsed.network
    layers = layer_counts(runtime, network)

    config = parsed.builder.create_builder_config()
    if options.workspace_gb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gb * (1 << 30)))
    if options.opt_level is not None:
        config.builder_optimization_level = int(options.opt_level)
    if runtime.is_rtx and targets.capabilities:
        config.num_compute_capabilities = len(targets.capabilities)
        for i, cc in enumerate(targets.capabilities):
            config.set_compute_capability(getattr(trt.ComputeCapability, RTX_TARGETS[cc]), i)

    trt_profile = parsed.builder.create_optimization_profile()
    io = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if tensor.name not in profile:
            raise TdeployError(f"{onnx_path.name} has an input {tensor.name!r} that its sidecar does not describe; "
                               "re-export the artifact")
        mn, op, mx = profile[tensor.name]
        declared = tuple(tensor.shape)
        if len(declared) != len(mn) or any(d >= 0 and not (a == b == c == d)
                                           for d, a, b, c in zip(declared, mn, op, mx)):
            raise TdeployError(f"{onnx_path.name}: input {tensor.name} is {_dims(declared)} in the graph but the "
                               f"profile asks {_dims(mn)}/{_dims(op)}/{_dims(mx)}; fix --shapes")
        trt_profile.set_shape(tensor.name, mn, op, mx)
        io.append({"name": tensor.name, "mode": "input", "dtype": _dtype_name(tensor.dtype), "shape": list(declared)})
    for i in range(network.num_outputs):
        tensor = network.get_output(i)
        io.append({"name": tensor.name, "mode": "output", "dtype": _dtype_name(tensor.dtype),
                   "shape": list(tuple(tensor.shape))})
    config.add_optimization_profile(trt_profile)

    timing_cache_path = Path(options.timing_cache) if options.timing_cache and not runtime.is_rtx else None
    if timing_cache_path is not None:
        blob = timing_cache_path.read_bytes() if timing_cache_path.is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)

    monitor = _progress_monitor(trt, label)  # kept alive for the whole build (TensorRT holds no reference)
    if monitor is not None:
        config.progress_monitor = monitor
    try:
        serialized = parsed.builder.build_serialized_network(network, config)
    finally:
        if monitor is not None:
            monitor.close()
    if serialized is None:
        errors = logger.of("error", "internal error")
        why = f": {' '.join(errors[-1].split())[:300]}" if errors else " (the TensorRT log above says why)"
        raise TdeployError(f"{runtime.label} could not build an engine from {onnx_path.name}{why}; try --workspace "
                           "with more GB, or narrower --shapes")
    if timing_cache_path is not None:
        atomic_write_bytes(timing_cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
    warnings = list(dict.fromkeys(logger.of("warning")))
    facts = {"io": io, "layers": layers, "warnings": warnings[:20],
             "duplicate_node_warnings": sum(DUPLICATE_NODE_WARNING in w for w in logger.of("warning"))}
    return bytes(memoryview(serialized)), facts


def _dims(shape) -> str:
    return "x".join(str(d) for d in shape)


def _dtype_name(dtype) -> str:
    return str(dtype).split(".")[-1].lower()


def _progress_monitor(trt, label: str):
    """A trt.IProgressMonitor drawing one tqdm bar per builder phase (nested by parent phase).

    TensorRT calls it from several threads, hence the lock. Bars are off when stderr is not a TTY.
    """
    if not hasattr(trt, "IProgressMonitor"):
        return None
    from tqdm import tqdm

    class _Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._bars: dict[str, Any] = {}
            self._depth: dict[str, int] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            with self._lock:
                depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
                self._depth[phase_name] = depth
                self._bars[phase_name] = tqdm(total=num_steps, desc=f"{label}: {phase_name}", position=depth,
                                              leave=depth == 0, disable=None, file=sys.stderr, unit="step")

        def step_complete(self, phase_name, step):
            with self._lock:
                bar = self._bars.get(phase_name)
                if bar is not None:
                    bar.update(max(0, step + 1 - bar.n))
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            with self._lock:
                bar = self._bars.pop(phase_name, None)
                self._depth.pop(phase_name, None)
                if bar is not None:
                    bar.close()

        def close(self):
            with self._lock:
                for bar in self._bars.values():
                    bar.close()
                self._bars.clear()

    return _Monitor()
