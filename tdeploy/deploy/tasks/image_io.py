"""Reading and writing image files for ``deploy run``: PNG/JPEG <-> float32 (C, H, W) arrays in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tdeploy.artifact.atomic import write_atomically
from tdeploy.errors import TdeployError

_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
            ".webp": "WEBP"}


def read_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """(channels, H, W) float32 in [0, 1]; colour images become gray (ITU-R 601 luma) for 1-channel models
    and gray images are repeated to RGB for 3-channel ones. 16-bit PNGs keep their precision."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise TdeployError(f"input image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float32) / 65535.0
                arr = arr[None] if channels == 1 else np.repeat(arr[None], 3, axis=0)
                return np.ascontiguousarray(np.clip(arr, 0, 1), dtype=np.float32)
            img = img.convert("L" if channels == 1 else "RGB")
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise TdeployError(f"cannot read image {path}: {exc} (expected PNG or JPEG)") from None
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (C, H, W)
    if channels not in (1, 3):
        raise TdeployError(f"the model takes {channels}-channel inputs; deploy run reads 1 (gray) or 3 (RGB)")
    return np.ascontiguousarray(arr)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W, C) or (H, W) uint8, rounded and clipped."""
    arr = np.clip(np.round(image.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write (C, H, W) in [0, 1] as 8-bit PNG/JPEG (by suffix), atomically: a temporary file in the same
    folder is renamed over ``path`` only once complete."""
    from PIL import Image

    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise TdeployError(f"cannot write {path}: use a .png or .jpg file name")
    if not path.parent.is_dir():
        raise TdeployError(f"output folder does not exist: {path.parent}")
    img = Image.fromarray(to_uint8(image))
    write_atomically(path, lambda f: img.save(f, format=fmt, **({"quality": 95} if fmt == "JPEG" else {})))
    return path
