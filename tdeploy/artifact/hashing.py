"""sha256 of files: what sidecars record about the ONNX graphs, checkpoints and engines they describe."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path | None) -> str | None:
    if path is None:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
