"""Engine sidecars, and whether an engine fits this machine.

A TensorRT engine is only valid for the TensorRT version and the GPU (compute capability) it was
built on. ``deploy build-engine`` writes ``<engine>.json`` beside every engine recording both; the
runner reads it before deserializing, so a mismatch is a one-line refusal instead of a crash deep in
TensorRT. Pure Python (no TensorRT, no GPU): tested on CPU.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from tdeploy.artifact.atomic import atomic_write_bytes, atomic_write_text
from tdeploy.errors import TdeployError
from tdeploy.tensorrt.runtimes import parse_version

ENGINE_SIDECAR_SCHEMA = 1
REBUILD_HINT = "rebuild with deploy build-engine"


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


