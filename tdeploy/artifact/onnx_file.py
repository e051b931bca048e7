"""Opening an ONNX file with one clear line when it is not a readable model; saving one of any size."""

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


# Protobuf refuses to serialise a message of 2 GiB or more: past this size an ONNX file keeps its
# tensors in one external data file beside it (``<file>.data``), as ONNX's external data format says.
EXTERNAL_DATA_BYTES = 2**31 - 2**26


def external_data_path(path: str | Path) -> Path:
    """Where :func:`save_onnx` puts the weights of a large ``path``: ``model.onnx`` -> ``model.onnx.data``."""
    path = Path(path)
    return path.with_name(path.name + ".data")


def save_onnx(model: onnx.ModelProto, path: str | Path) -> Path | None:
    """Save ``model`` at ``path``; one that protobuf cannot hold in one file keeps its tensors in
    :func:`external_data_path` (returned; None when the file holds everything)."""
    path = Path(path)
    data = external_data_path(path)
    if model.ByteSize() < EXTERNAL_DATA_BYTES:
        onnx.save(model, str(path))
        return None
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data.name, size_threshold=1024)
    return data
