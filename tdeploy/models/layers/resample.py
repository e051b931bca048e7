"""Antialiased bicubic resampling of a small grid (a position embedding) as two matrix products.

``F.interpolate(mode="bicubic", antialias=True)`` exports as ONNX ``Resize(antialias=1)``, which
TensorRT's parser refuses ("Antialiasing is not supported currently"). This module computes the same
separable filter as PyTorch's antialiased bicubic (the PIL-style kernel with a = -0.5, its support
widened by the scale when downsampling, weights renormalised at the borders) as an (out, in) weight
matrix per axis, with ordinary tensor ops: the exported graph has Range, arithmetic, Where and
MatMul, which every runtime parses, and it follows the runtime size. It equals PyTorch's result to
float32 rounding (a few 1e-6 on unit-variance inputs); at scale 1 the matrices are exactly the identity.
"""

from __future__ import annotations

import torch

CUBIC_A = -0.5  # PyTorch's (and PIL's) coefficient for antialiased bicubic


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5; zero for |x| >= 2."""
    x = x.abs()
    a = CUBIC_A
    near = ((a + 2) * x - (a + 3)) * x * x + 1  # |x| < 1
    far = (((x - 5) * x + 8) * x - 4) * a  # 1 <= |x| < 2
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def bicubic_antialias_matrix(in_size: int, out_size, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(out_size, in_size) weights W with ``W @ v`` = antialiased bicubic resampling of a vector ``v``.

    ``in_size`` is a Python int (the trained grid); ``out_size`` may be symbolic (torch.export).
    Output pixel i is centred at ``scale * (i + 0.5)`` with ``scale = in_size / out_size`` (half-pixel
    coordinates); the kernel is stretched by ``scale`` when downsampling (that is the antialiasing)
    and the input pixels it may read are those PyTorch's kernel reads, weights renormalised to sum 1.
    """
    i = torch.arange(out_size, dtype=dtype)  # (out,)
    j = torch.arange(in_size, dtype=dtype)  # (in,)
    out_count = torch.ones_like(i).sum()  # out_size as a tensor: scale stays symbolic in the graph
    scale = in_size / out_count
    downsampling = scale >= 1
    support = torch.where(downsampling, 2.0 * scale, torch.full_like(scale, 2.0))
    inv_scale = torch.where(downsampling, 1.0 / scale, torch.ones_like(scale))
    center = scale * (i + 0.5)  # (out,)
    first = torch.clamp(torch.floor(center - support + 0.5), min=0)  # first input pixel read
    end = torch.clamp(torch.floor(center + support + 0.5), max=in_size)  # one past the last
    window = (j[None, :] >= first[:, None]) & (j[None, :] < end[:, None])  # (out, in)
    weights = _cubic((j[None, :] - center[:, None] + 0.5) * inv_scale) * window
    return weights / weights.sum(dim=1, keepdim=True)


def resample_grid(grid: torch.Tensor, out_hw: tuple) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, H', W') antialiased bicubic, as ``F.interpolate(..., antialias=True)``."""
    h, w = grid.shape[-2:]
    rows = bicubic_antialias_matrix(h, out_hw[0], grid.dtype)  # (H', h)
    cols = bicubic_antialias_matrix(w, out_hw[1], grid.dtype)  # (W', w)
    return rows @ grid @ cols.transpose(0, 1)
