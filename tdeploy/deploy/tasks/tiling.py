"""Tiled inference for image-to-image models: cut, run, and blend tiles back without seams.

Tiles of ``tile`` x ``tile`` input pixels step by ``tile - overlap``; the last tile in each direction
is moved back to end at the image border, so every tile has the full size (one exported shape) unless
the image is smaller than a tile. Each output tile is weighted by a separable ramp that rises
linearly across its actual overlap with the previous tile and falls across the overlap with the next
(1 at image borders); the two ramps of an overlap sum to 1, so the result cross-fades linearly from
one tile to the other and is a single tile's output, unchanged, everywhere else.

Pure numpy; the model is any callable ``(1, C, h, w) -> (1, C', s*h, s*w)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis: step ``tile - overlap``, the last tile flush with the end."""
    if tile >= size:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be >= 0 and smaller than the tile {tile}")
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


def ramp(length: int, rise: int, fall: int) -> np.ndarray:
    """(length,) weights: linear from 1/(rise+1) up to 1 over the first ``rise`` samples, down likewise
    over the last ``fall`` samples; 1 elsewhere. Two tiles overlapping by n samples use rise = fall = n
    there, so their weights sum to 1 across the overlap (a linear cross-fade)."""
    w = np.ones(length, dtype=np.float32)
    if rise > 0:
        w[:rise] = np.minimum(w[:rise], np.arange(1, rise + 1, dtype=np.float32) / (rise + 1))
    if fall > 0:
        w[length - fall :] = np.minimum(w[length - fall :], np.arange(fall, 0, -1, dtype=np.float32) / (fall + 1))
    return w


def axis_ramps(size: int, tile: int, overlap: int, scale: int = 1) -> dict[int, np.ndarray]:
    """start -> (scale*tile,) output weights of each tile along one axis, from the real overlaps."""
    starts = tile_starts(size, tile, overlap)
    length = min(tile, size)
    out = {}
    for i, start in enumerate(starts):
        rise = starts[i - 1] + length - start if i > 0 else 0
        fall = start + length - starts[i + 1] if i + 1 < len(starts) else 0
        out[start] = ramp(scale * length, scale * rise, scale * fall)
    return out


def tiles(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(top, left, h, w) of every tile, row-major."""
    out = []
    for top in tile_starts(height, tile, overlap):
        for left in tile_starts(width, tile, overlap):
            out.append((top, left, min(tile, height), min(tile, width)))
    return out


def run_tiled(
    image: np.ndarray,
    fn: Callable[[np.ndarray], np.ndarray],
    *,
    tile: int | None,
    overlap: int = 32,
    scale: int = 1,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> np.ndarray:
    """Apply ``fn`` to ``image`` (C, H, W), whole (``tile`` None or >= the image) or in blended tiles.

    Returns (C', scale*H, scale*W) float32. ``progress`` wraps the tile iterator (e.g. tqdm).
    """
    C, H, W = image.shape
    if tile is None or (tile >= H and tile >= W):
        out = fn(image[None])[0]
        return out.astype(np.float32, copy=False)
    overlap = min(overlap, tile - 1)
    boxes = tiles(H, W, tile, overlap)
    ramps_y = axis_ramps(H, tile, overlap, scale)
    ramps_x = axis_ramps(W, tile, overlap, scale)
    acc = None
    weight = np.zeros((scale * H, scale * W), dtype=np.float32)
    for top, left, h, w in progress(boxes) if progress is not None else boxes:
        out = fn(np.ascontiguousarray(image[None, :, top : top + h, left : left + w]))[0]
        if out.shape[-2:] != (scale * h, scale * w):
            raise ValueError(f"the model returned {tuple(out.shape[-2:])} for a {h}x{w} tile; expected x{scale}")
        if acc is None:
            acc = np.zeros((out.shape[0], scale * H, scale * W), dtype=np.float32)
        wt = ramps_y[top][:, None] * ramps_x[left][None, :]
        ys, xs = slice(scale * top, scale * (top + h)), slice(scale * left, scale * (left + w))
        acc[:, ys, xs] += out.astype(np.float32) * wt
        weight[ys, xs] += wt
    return acc / weight
