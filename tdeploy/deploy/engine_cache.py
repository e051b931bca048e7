"""Engine sidecars, the engine cache key, and whether an engine fits this machine.

A TensorRT engine is only valid for the TensorRT version and the GPU (compute capability) it was
built on. ``deploy build-engine`` writes ``<engine>.json`` beside every engine recording both; the
runner reads it before deserializing, so a mismatch is a one-line refusal instead of a crash deep in
TensorRT. Everything here is pure Python (no TensorRT, no GPU): tested on CPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tdeploy.deploy.tensorrt_env import parse_version
from tdeploy.errors import TdeployError
from tdeploy.export.atomic import atomic_write_bytes, atomic_write_text

ENGINE_SIDECAR_SCHEMA = 1
REBUILD_HINT = "rebuild with deploy build-engine"

Shape = tuple[int, ...]
Profile = dict[str, tuple[Shape, Shape, Shape]]  # input name -> (min, opt, max)


# --- the cache key -----------------------------------------------------------------------------------
def profile_to_json(profile: Profile) -> dict[str, dict[str, list[int]]]:
    return {
        name: {"min": [int(d) for d in mn], "opt": [int(d) for d in op], "max": [int(d) for d in mx]}
        for name, (mn, op, mx) in profile.items()
    }


def profile_from_json(data: dict[str, Any]) -> Profile:
    return {name: (tuple(v["min"]), tuple(v["opt"]), tuple(v["max"])) for name, v in data.items()}


def cache_key(
    onnx_sha256: str,
    plugins_hash: str,
    trt_version: str,
    compute_capability: tuple[int, int] | list[int],
    profile: Profile,
    precision: str,
    builder_options: dict[str, Any],
) -> str:
    """sha256 of a canonical JSON of everything that makes two builds produce the same engine.

    Canonical: keys sorted, tuples as lists, options that are None dropped (unset == default), so
    neither dict order nor tuple/list spelling changes the key; any value that changes does.
    """
    payload = {
        "onnx_sha256": str(onnx_sha256),
        "plugins_hash": str(plugins_hash),
        "tensorrt_version": str(trt_version),
        "compute_capability": [int(c) for c in compute_capability],
        "profile": profile_to_json(profile),
        "precision": str(precision),
        "builder_options": {k: v for k, v in builder_options.items() if v is not None},
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot put {type(value).__name__} into an engine cache key")


# --- engine sidecars -----------------------------------------------------------------------------------
def engine_sidecar_path(engine: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def load_engine_sidecar(engine: str | Path) -> dict[str, Any]:
    """The sidecar of ``engine``; one-line errors when it is missing or unreadable."""
    path = engine_sidecar_path(engine)
    if not path.is_file():
        raise TdeployError(
            f"no {path.name} beside {engine}: tdeploy needs the sidecar that deploy build-engine writes to check "
            f"that the engine fits this GPU and TensorRT; {REBUILD_HINT}"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TdeployError(f"{path} is not an engine sidecar ({type(exc).__name__}: {exc}); {REBUILD_HINT}") from None
    missing = [k for k in ("tensorrt_version", "gpu") if k not in data]
    if not isinstance(data, dict) or missing:
        raise TdeployError(f"{path} is not an engine sidecar (missing {', '.join(missing) or 'fields'}); {REBUILD_HINT}")
    return data


def _describe(gpu_name: str, cc: tuple[int, ...] | list[int], trt_version: str) -> str:
    sm = ".".join(str(int(c)) for c in cc) if cc else "?"
    return f"{gpu_name} (sm {sm})/TensorRT {trt_version}"


def check_engine_compatible(
    engine_sidecar: dict[str, Any], trt_version: str, gpu_name: str, compute_capability: tuple[int, int]
) -> str | None:
    """None when an engine with this sidecar runs here, else the one-line reason.

    TensorRT refuses engines from another version (we compare the full version: engines are not
    portable across releases unless built version-compatible) and kernels are compiled per compute
    capability. Another GPU *name* with the same compute capability loads (TensorRT warns that
    tactics may be suboptimal), so that alone is not refused.
    """
    built_trt = str(engine_sidecar.get("tensorrt_version", ""))
    gpu = engine_sidecar.get("gpu") or {}
    built_name = str(gpu.get("name", "an unknown GPU"))
    built_cc = tuple(int(c) for c in gpu.get("compute_capability", ()) or ())
    here_cc = tuple(int(c) for c in compute_capability)
    same_trt = parse_version(built_trt) == parse_version(trt_version) and parse_version(built_trt) != ()
    same_cc = built_cc == here_cc
    if same_trt and same_cc:
        return None
    return (
        f"engine built for {_describe(built_name, built_cc, built_trt)}, this machine has "
        f"{_describe(gpu_name, here_cc, trt_version)}; {REBUILD_HINT}"
    )


def write_engine(path: Path, data: bytes, sidecar: dict[str, Any]) -> None:
    """Engine then sidecar, each atomically; a stale sidecar is removed first so that a reader never
    pairs a new engine with an old sidecar."""
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        engine_sidecar_path(path).unlink()
    atomic_write_bytes(path, data)
    atomic_write_text(engine_sidecar_path(path), json.dumps(sidecar, indent=2) + "\n")


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
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
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
