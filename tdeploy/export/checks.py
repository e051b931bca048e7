"""Checks every exported graph passes before it is written: onnx.checker (full), shape inference,
and an ONNX Runtime run compared against PyTorch at the export shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from tdeploy.errors import TdeployError


def load_onnx(path: str | Path, *, load_weights: bool = True) -> onnx.ModelProto:
    """Load an ONNX file, or fail with one line saying the file is not a readable ONNX model."""
    path = Path(path)
    if not path.is_file():
        raise TdeployError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=load_weights)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise TdeployError(
            f"{path} is not a readable ONNX model ({reason}); re-export it with `deploy export`"
        ) from None
    if not model.graph.node:
        raise TdeployError(f"{path} is not a readable ONNX model (no graph nodes); re-export it with `deploy export`")
    return model


def check_model(path: str | Path) -> onnx.ModelProto:
    """onnx.checker with full_check (includes strict shape inference); returns the inferred model."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
        return onnx.shape_inference.infer_shapes(onnx.load(str(path)), check_type=True, strict_mode=True)
    except Exception as exc:  # checker/inference errors are multi-line: keep the first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TdeployError(f"exported graph {Path(path).name} fails the ONNX checker: {first}") from None


def compare_outputs(
    got: dict[str, np.ndarray], ref: dict[str, np.ndarray], atol: float, rtol: float
) -> list[str]:
    """Names (with the max error) of outputs where |got - ref| > atol + rtol * |ref| anywhere."""
    bad = []
    for name, r in ref.items():
        g = got[name]
        if g.shape != r.shape:
            bad.append(f"{name}: shape {g.shape} != {r.shape}")
            continue
        g64, r64 = g.astype(np.float64), r.astype(np.float64)
        if not np.all(np.abs(g64 - r64) <= atol + rtol * np.abs(r64)):
            bad.append(f"{name}: max abs error {np.max(np.abs(g64 - r64)):.3g}")
    return bad
