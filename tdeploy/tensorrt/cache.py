"""The engine cache: a key over everything that decides an engine, and a folder of engines by key.

``deploy build-engine --cache-dir DIR`` stores each engine it builds as ``DIR/<key>.engine`` (with its
sidecar) and reuses it when the key comes again. Pure Python (no TensorRT, no GPU): tested on CPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from tdeploy.artifact.atomic import atomic_write_bytes, atomic_write_text, temp_file_beside
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
    """The cached engine for ``key`` when both it and its sidecar are there."""
    engine = Path(cache_dir) / f"{key}.engine"
    if engine.is_file() and engine_sidecar_path(engine).is_file():
        return engine
    return None


def _link_or_copy(src: Path, dest: Path) -> None:
    """Hard-link ``src`` to ``dest`` atomically (same filesystem), else copy it atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(dest)
    os.close(fd)
    os.unlink(tmp)
    try:
        os.link(src, tmp)
        os.replace(tmp, dest)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        atomic_write_bytes(dest, src.read_bytes())


def store_in_cache(cache_dir: str | Path, key: str, engine: Path, sidecar: dict[str, Any]) -> Path:
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / f"{key}.engine"
    _link_or_copy(Path(engine), dest)
    atomic_write_text(engine_sidecar_path(dest), json.dumps({**sidecar, "engine": dest.name}, indent=2) + "\n")
    return dest


def install_from_cache(cached: Path, dest: Path, sidecar: dict[str, Any]) -> None:
    """Put the cached engine at ``dest`` (linked when possible) with ``sidecar`` beside it."""
    dest = Path(dest)
    if dest.resolve() == Path(cached).resolve():
        return
    with contextlib.suppress(FileNotFoundError):
        engine_sidecar_path(dest).unlink()
    _link_or_copy(Path(cached), dest)
    atomic_write_text(engine_sidecar_path(dest), json.dumps(sidecar, indent=2) + "\n")
