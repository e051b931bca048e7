"""Opening an ONNX file with one clear line when it is not a readable model."""

from __future__ import annotations

from pathlib import Path

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
