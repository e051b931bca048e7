"""``deploy build-engine``: ONNX artifact -> TensorRT engine(s), strongly typed, one profile each.

Written against the TensorRT Python API of 10.9+ and 11.x:

* networks are strongly typed: 10.x needs ``1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED``;
  11.x is always strongly typed (the flag is deprecated and ignored), so none is passed there;
  ``PREFER_AOT_PYTHON_PLUGINS`` (10.9+) makes TensorRT embed the AOT implementation of tdeploy's
  plugins, so the engine needs no Python and no plugin library at run time;
* no precision builder flags (FP16/INT8 were removed in 11.x): precision lives in the ONNX graph.

The decisions (profile, cache key, engine sidecar) are pure Python in profile.py, cache.py and
sidecar.py; this module makes the TensorRT calls.
"""

from __future__ import annotations

import datetime as _dt
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tdeploy
from tdeploy.artifact.atomic import atomic_write_bytes
from tdeploy.artifact.folder import Artifact
from tdeploy.artifact.hashing import sha256_file
from tdeploy.errors import BackendUnavailable, TdeployError
from tdeploy.plugins.registry import plugin_ops, plugins_hash
from tdeploy.tensorrt.cache import cache_key, cached_engine, install_from_cache, store_in_cache
from tdeploy.tensorrt.profile import Profile, derive_profile, format_profile, profile_to_json
from tdeploy.tensorrt.runtimes import gpu_identity, gpu_problem, import_tensorrt, tensorrt_major
from tdeploy.tensorrt.sidecar import ENGINE_SIDECAR_SCHEMA, load_engine_sidecar, write_engine


@dataclass
class BuildOptions:
    shapes: list[str] = field(default_factory=list)  # "input:min/opt/max" overrides
    workspace_gb: float | None = None
    timing_cache: str | None = None
    opt_level: int | None = None
    cache_dir: str | None = None

    def key_fields(self) -> dict[str, Any]:
        """The options that change the engine itself (the timing cache and cache folder do not)."""
        return {"workspace_gb": self.workspace_gb, "opt_level": self.opt_level}


class EngineSet(list):
    """The engines of a multi-graph artifact (one per graph); prints as a comma-separated list."""

    def __str__(self) -> str:
        return ", ".join(str(p) for p in self)


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


# --- the command ---------------------------------------------------------------------------------------
def build_engine(artifact: Artifact, out: Path | None = None, options: BuildOptions | None = None) -> Path | EngineSet:
    """Build (or take from ``--cache-dir``) one engine per graph; the path, or an :class:`EngineSet`."""
    options = options or BuildOptions()
    # The profile is checked before anything else, so a typo in --shapes is reported on any machine.
    for graph in artifact.sidecar.graphs:
        derive_profile(artifact.sidecar, options.shapes, graph=graph)
    import_tensorrt()  # one line saying how to install it, when absent
    if problem := gpu_problem():
        raise BackendUnavailable(f"building a TensorRT engine needs an NVIDIA GPU: {problem}")
    return _build(artifact, out, options)


def network_flag_names(trt_version: str, available: set[str] | frozenset[str]) -> list[str]:
    """Names of the NetworkDefinitionCreationFlag members to set for this TensorRT version."""
    names = []
    if tensorrt_major(trt_version) < 11 and "STRONGLY_TYPED" in available:
        names.append("STRONGLY_TYPED")
    if "PREFER_AOT_PYTHON_PLUGINS" in available:
        names.append("PREFER_AOT_PYTHON_PLUGINS")
    return names


def format_parser_error(onnx_name: str, node_name: str, op_type: str, desc: str) -> str:
    """One line per parser error, naming the node (and what to do for tdeploy's own ops)."""
    where = f"node {node_name or '?'}" + (f" ({op_type})" if op_type else "")
    line = f"{onnx_name}: {where}: {' '.join(str(desc).split())}"
    if op_type in {op.name for op in plugin_ops()}:
        line += ("; the tdeploy plugin for it could not be used (check the TensorRT log above), "
                 "or re-export with --no-plugins")
    return line


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _build(artifact: Artifact, out: Path | None, options: BuildOptions) -> Path | EngineSet:
    trt = import_tensorrt()
    gpu_name, cc = gpu_identity()
    for op in plugin_ops():  # before parsing: the parser sends the custom nodes to these plugins
        op.register_trt()
    p_hash = plugins_hash()
    written = EngineSet()
    for graph, path in engine_paths(artifact, out).items():
        profile = derive_profile(artifact.sidecar, options.shapes, graph=graph)
        onnx_path = artifact.graph_path(graph)
        onnx_sha = sha256_file(onnx_path)
        key = cache_key(onnx_sha, p_hash, trt.__version__, cc, profile, artifact.sidecar.precision,
                        options.key_fields())
        sidecar = {
            "schema": ENGINE_SIDECAR_SCHEMA,
            "engine": path.name,
            "graph": graph,
            "variant": artifact.sidecar.variant,
            "family": artifact.sidecar.family,
            "tensorrt_version": trt.__version__,
            "gpu": {"name": gpu_name, "compute_capability": list(cc)},
            "profile": profile_to_json(profile),
            "precision": artifact.sidecar.precision,
            "onnx": {"file": onnx_path.name, "sha256": onnx_sha},
            "plugins_hash": p_hash,
            "plugins": [op.name for op in plugin_ops()],
            "builder_options": {**options.key_fields(), "timing_cache": options.timing_cache},
            "cache_key": key,
            "tdeploy_version": tdeploy.__version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        hit = cached_engine(options.cache_dir, key) if options.cache_dir else None
        if hit is not None:
            cached = load_engine_sidecar(hit)
            install_from_cache(hit, path, {**cached, **sidecar, "io": cached.get("io", []), "from_cache": str(hit)})
            _note(f"{graph}: reused {hit} (same cache key)")
        else:
            _note(f"{graph}: building {onnx_path.name} with profile {format_profile(profile)}")
            data, io = _build_serialized(trt, onnx_path, profile, options, label=graph)
            sidecar["io"] = io
            write_engine(path, data, sidecar)
            if options.cache_dir:
                store_in_cache(options.cache_dir, key, path, sidecar)
        written.append(path)
    return written[0] if len(written) == 1 else written


def _build_serialized(trt, onnx_path: Path, profile: Profile, options: BuildOptions,
                      label: str) -> tuple[bytes, list[dict[str, Any]]]:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    members = set(trt.NetworkDefinitionCreationFlag.__members__)
    flags = 0
    for name in network_flag_names(trt.__version__, members):
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # from the file: external weights resolve beside it
        lines = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            lines.append(format_parser_error(onnx_path.name, _call(err, "node_name"), _call(err, "node_operator"),
                                             err.desc()))
        for line in lines[1:]:
            _note(f"parser error: {line}")
        more = f" (and {len(lines) - 1} more, above)" if len(lines) > 1 else ""
        raise TdeployError(f"TensorRT's ONNX parser rejected {lines[0] if lines else onnx_path.name}{more}")

    config = builder.create_builder_config()
    if options.workspace_gb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gb * (1 << 30)))
    if options.opt_level is not None:
        config.builder_optimization_level = int(options.opt_level)

    trt_profile = builder.create_optimization_profile()
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

    timing_cache_path = Path(options.timing_cache) if options.timing_cache else None
    if timing_cache_path is not None:
        blob = timing_cache_path.read_bytes() if timing_cache_path.is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)

    monitor = _progress_monitor(trt, label)  # kept alive for the whole build (TensorRT holds no reference)
    if monitor is not None:
        config.progress_monitor = monitor
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if monitor is not None:
            monitor.close()
    if serialized is None:
        raise TdeployError(f"TensorRT could not build an engine from {onnx_path.name} (the TensorRT log above says "
                           "why); try --workspace with more GB, or narrower --shapes")
    if timing_cache_path is not None:
        atomic_write_bytes(timing_cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized)), io


def _call(obj, method: str) -> str:
    fn = getattr(obj, method, None)  # node_name/node_operator: TensorRT 10+
    try:
        return str(fn()) if fn is not None else ""
    except Exception:  # noqa: BLE001 - a field we only use for the message
        return ""


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
