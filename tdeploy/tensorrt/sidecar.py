"""Engine sidecars, and whether an engine fits this machine.

An engine is only valid for the runtime (datacenter TensorRT or TensorRT-RTX) and exact version that
built it, and for the GPUs its kernels target. ``deploy build-engine`` writes ``<engine>.json`` beside
every engine recording them (schema 2)::

    {"schema": 2, "runtime": {"name": "tensorrt-rtx", "version": "1.7.1.116"},
     "targets": ["8.9"], "targets_default": false, "gpu": null,
     "layers": {"total": 412, "plugins": {"WindowAttention": 4}}, "plugin_form": "cpp",
     "plugin_library": {"file": "libtdeploy_plugins.so", "sha256": "..."}, "onnx": {"file": ..., "sha256": ...}}

The runner reads it before deserializing, so a mismatch is a one-line refusal instead of a crash
deep in TensorRT. Pure Python (no TensorRT, no GPU): tested on CPU.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from tdeploy.artifact.atomic import atomic_write_bytes, atomic_write_text
from tdeploy.errors import TdeployError
from tdeploy.tensorrt.runtimes import LABELS, RTX_DEFAULT_MIN, RTX_TARGETS, capability_tuple, parse_version

ENGINE_SIDECAR_SCHEMA = 2
REBUILD_HINT = "rebuild with deploy build-engine"


def engine_sidecar_path(engine: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def load_engine_sidecar(engine: str | Path) -> dict[str, Any]:
    """The sidecar of ``engine``; one-line errors when it is missing or unreadable.

    Schema 1 sidecars (``tensorrt_version`` + ``gpu``, datacenter TensorRT only) read as schema 2.
    """
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
    if not isinstance(data, dict):
        raise TdeployError(f"{path} is not an engine sidecar (not a JSON object); {REBUILD_HINT}")
    if "runtime" not in data and "tensorrt_version" in data:  # schema 1
        cc = (data.get("gpu") or {}).get("compute_capability") or []
        data = {**data, "runtime": {"name": "tensorrt", "version": data["tensorrt_version"]},
                "targets": [_cc_text(cc)] if cc else []}
    missing = [k for k in ("runtime", "targets") if k not in data]
    if missing:
        raise TdeployError(f"{path} is not an engine sidecar (missing {', '.join(missing)}); {REBUILD_HINT}")
    return data


def _cc_text(cc) -> str:
    return ".".join(str(int(c)) for c in cc) if cc else "?"


def runs_on(engine_sidecar: dict[str, Any], compute_capability: tuple[int, int]) -> bool:
    """Whether an engine's kernels target a GPU of ``compute_capability``.

    Datacenter TensorRT compiles for the one GPU it built on. TensorRT-RTX compiles for its targets; with
    none given, for 8.0, 8.6, 8.9, 12.0 "and later" (its documentation), so never 7.5 or 9.0 then.
    """
    cc = tuple(int(c) for c in compute_capability)
    if engine_sidecar.get("targets_default"):
        defaults = [capability_tuple(t) for t in RTX_TARGETS if capability_tuple(t) >= RTX_DEFAULT_MIN]
        return cc in defaults or cc > max(defaults)
    return cc in [capability_tuple(t) for t in engine_sidecar.get("targets") or []]


def check_engine_compatible(engine_sidecar: dict[str, Any], runtime_name: str, runtime_version: str,
                            gpu_name: str, compute_capability: tuple[int, int]) -> str | None:
    """None when an engine with this sidecar runs here, else the one-line reason.

    An engine runs only in the runtime (``tensorrt`` or ``tensorrt-rtx``) and the exact version that
    built it (engines are not portable across releases unless built version-compatible), and only on a
    GPU its kernels target. Another GPU *name* of the same compute capability loads (TensorRT warns that
    tactics may be suboptimal), so that alone is not refused.
    """
    runtime = engine_sidecar.get("runtime") or {}
    built_name, built_version = str(runtime.get("name", "")), str(runtime.get("version", ""))
    built = f"{LABELS.get(built_name, built_name or 'an unknown TensorRT')} {built_version}".strip()
    here = f"{LABELS.get(runtime_name, runtime_name)} {runtime_version}"
    if built_name != runtime_name:
        return f"engine built with {built}, which this runner ({here}) cannot load; {REBUILD_HINT} --runtime {runtime_name}"
    if parse_version(built_version) != parse_version(runtime_version) or parse_version(built_version) == ():
        return f"engine built with {built}, this machine has {here}; {REBUILD_HINT}"
    if not runs_on(engine_sidecar, compute_capability):
        if engine_sidecar.get("targets_default"):
            targets = "TensorRT-RTX's default targets (8.0, 8.6, 8.9, 12.0 and later)"
        else:
            targets = "sm " + ", ".join(engine_sidecar.get("targets") or ["?"])
        gpu = (engine_sidecar.get("gpu") or {}).get("name")
        built_on = f" on {gpu}" if gpu else ""
        fix = (f"{REBUILD_HINT} --compute-capability {_cc_text(compute_capability)}" if runtime_name == "tensorrt-rtx"
               else f"{REBUILD_HINT} on this GPU")
        return f"engine built{built_on} for {targets}; this GPU, {gpu_name}, is sm {_cc_text(compute_capability)}: {fix}"
    return None


def write_engine(path: Path, data: bytes, sidecar: dict[str, Any]) -> None:
    """Engine then sidecar, each atomically; a stale sidecar is removed first so that a reader never
    pairs a new engine with an old sidecar."""
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        engine_sidecar_path(path).unlink()
    atomic_write_bytes(path, data)
    atomic_write_text(engine_sidecar_path(path), json.dumps(sidecar, indent=2) + "\n")


