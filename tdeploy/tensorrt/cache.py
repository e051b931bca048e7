"""The engine cache: a key over everything that decides an engine, and a folder of engines by key.

``deploy build-engine --cache-dir DIR`` stores each engine it builds as ``DIR/<key>.engine`` (with its
sidecar) and reuses it when the key comes again. Pure Python (no TensorRT, no GPU): tested on CPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from tdeploy.artifact.atomic import atomic_write_text, link_or_copy
from tdeploy.tensorrt.kernels import copy_kernel_graph, kernel_graph_path
from tdeploy.tensorrt.profile import Profile, profile_to_json
from tdeploy.tensorrt.sidecar import engine_sidecar_path


# --- the cache key -----------------------------------------------------------------------------------
def cache_key(
    onnx_sha256: str,
    plugins_hash: str,
    runtime: str,
    runtime_version: str,
    targets: list[str] | tuple[str, ...],
    profile: Profile,
    precision: str,
    builder_options: dict[str, Any],
    plugin_form: str = "none",
    plugin_library_sha256: str | None = None,
) -> str:
    """sha256 of a canonical JSON of everything that makes two builds produce the same engine.

    ``plugins_hash`` covers what decides the plugins' kernels (:func:`tdeploy.plugins.plugins_hash`);
    ``targets`` are the compute capabilities built for (the GPU's for datacenter TensorRT, or
    ``["default"]``); the plugin form and the C++ library's hash say which plugins are inside.
    Canonical: keys sorted, tuples as lists, options that are None dropped (unset == default), so
    neither dict order nor tuple/list spelling changes the key; any value that changes does.
    """
    payload = {
        "onnx_sha256": str(onnx_sha256),
        "plugins_hash": str(plugins_hash),
        "runtime": str(runtime),
        "runtime_version": str(runtime_version),
        "targets": sorted(str(t) for t in targets),
        "profile": profile_to_json(profile),
        "precision": str(precision),
        "builder_options": {k: v for k, v in builder_options.items() if v is not None},
        "plugin_form": str(plugin_form),
        "plugin_library_sha256": plugin_library_sha256,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot put {type(value).__name__} into an engine cache key")


# --- the cache folder ----------------------------------------------------------------------------------
def cached_engine(cache_dir: str | Path, key: str) -> Path | None:
    """The cached engine for ``key`` when it, its sidecar and the graph with kernels it names are there."""
    engine = Path(cache_dir) / f"{key}.engine"
    if not (engine.is_file() and engine_sidecar_path(engine).is_file()):
        return None
    kernels = json.loads(engine_sidecar_path(engine).read_text()).get("kernels_onnx")
    if kernels and not (engine.parent / kernels).is_file():  # an entry someone pruned: build it again
        return None
    return engine


def store_in_cache(cache_dir: str | Path, key: str, engine: Path, sidecar: dict[str, Any]) -> Path:
    """Put ``engine`` (and the graph with kernels its sidecar names, for ``--plugins cpp``) in the cache."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / f"{key}.engine"
    link_or_copy(Path(engine), dest)
    sidecar = {**sidecar, "engine": dest.name}
    if sidecar.get("kernels_onnx"):
        graph = copy_kernel_graph(Path(engine).parent / sidecar["kernels_onnx"], kernel_graph_path(dest))
        sidecar["kernels_onnx"] = graph.name
    atomic_write_text(engine_sidecar_path(dest), json.dumps(sidecar, indent=2) + "\n")
    return dest


def install_from_cache(cached: Path, dest: Path, sidecar: dict[str, Any]) -> dict[str, Any]:
    """Put the cached engine at ``dest`` (linked when possible) with ``sidecar`` beside it, and the cached
    graph with kernels beside it too when the sidecar names one; returns the sidecar as written."""
    dest, cached = Path(dest), Path(cached)
    if dest.resolve() == cached.resolve():
        return sidecar
    with contextlib.suppress(FileNotFoundError):
        engine_sidecar_path(dest).unlink()
    link_or_copy(cached, dest)
    sidecar = {**sidecar, "engine": dest.name}
    if sidecar.get("kernels_onnx"):
        graph = copy_kernel_graph(cached.parent / sidecar["kernels_onnx"], kernel_graph_path(dest))
        sidecar["kernels_onnx"] = graph.name
    atomic_write_text(engine_sidecar_path(dest), json.dumps(sidecar, indent=2) + "\n")
    return sidecar
