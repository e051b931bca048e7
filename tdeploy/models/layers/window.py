"""Shifted-window attention blocks shared by Swin and SwinIR, with timm's / the official parameter names.

Tokens stay channels-last, (B, H, W, C), through a block. Attention itself is ONE call of the
``window_attention`` op (tdeploy/plugins/window_attention), which exports as a single custom node.

Everything that depends on the feature-map size (padding to whole windows, the number of windows,
the shifted-window mask) is computed from the runtime tensor shapes with tensor ops, so that
``torch.export`` keeps it symbolic and one exported graph serves every input size. The only Python
branches are on the configuration (window size, shift), never on sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tdeploy.models.layers.mlp import Mlp
from tdeploy.plugins.window_attention import window_attention


def window_partition(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of the window -> (B*nW, wh*ww, C), windows row-major per image.

    Under torch.export, H and W should be written as ``n * window`` (see :func:`pad_to_windows`): the
    views below then simplify at once instead of sending sympy after Mod/FloorDiv identities.
    """
    B, H, W, C = x.shape
    wh, ww = window
    nh, nw = H // wh, W // ww
    x = x.view(B, nh, wh, nw, ww, C).permute(0, 1, 3, 2, 4, 5)
    # An explicit contiguous copy, then a view: reshape() would ask whether the permuted tensor is
    # viewable, and with B = nh = nw = 1 at trace time (batch 1, one window) torch.export answers
    # that by specialising the batch to 1.
    return x.clone(memory_format=torch.contiguous_format).view(B * nh * nw, wh * ww, C)


def window_reverse(windows: torch.Tensor, window: tuple[int, int], B, H, W) -> torch.Tensor:
    """(B*nW, wh*ww, C) -> (B, H, W, C); the inverse of :func:`window_partition`."""
    C = windows.shape[-1]
    wh, ww = window
    nh, nw = H // wh, W // ww
    x = windows.view(B, nh, nw, wh, ww, C).permute(0, 1, 3, 2, 4, 5)
    return x.clone(memory_format=torch.contiguous_format).view(B, H, W, C)  # see window_partition


def padded_size(size, window: int):
    """``size`` rounded up to whole windows, written as windows * window (cheap for torch.export's sympy)."""
    return (size + window - 1) // window * window


def relative_position_index(wh: int, ww: int) -> torch.Tensor:
    """(N, N) int64 index into the ((2wh-1)*(2ww-1), heads) bias table, N = wh*ww (Swin's layout)."""
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1)  # (2, N)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # (N, N, 2), in [-w+1, w-1]
    return (rel[..., 0] + wh - 1) * (2 * ww - 1) + (rel[..., 1] + ww - 1)


def _region_ids(size, window: int, shift: int, device) -> torch.Tensor:
    """(size,) region of each row (or column) of a cyclically shifted map: 0, 1 or 2.

    Rows [0, size-window) were not moved (0); [size-window, size-shift) are the last window's own rows
    (1); [size-shift, size) wrapped round from the top (2). Comparisons against arange, so ``size``
    may be symbolic under torch.export.
    """
    pos = torch.arange(size, device=device)
    if shift == 0:  # timm: a zero shift on one axis puts every row in one region
        return torch.zeros_like(pos)
    return (pos >= size - window).long() + (pos >= size - shift).long()


def shifted_window_mask(H, W, window: tuple[int, int], shift: tuple[int, int], device=None,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(nW, N, N) additive mask of shifted windows for a (H, W) map (multiples of the window): 0 between
    tokens of one region, -100 across regions (the value Swin and SwinIR use)."""
    rows = _region_ids(H, window[0], shift[0], device)  # (H,)
    cols = _region_ids(W, window[1], shift[1], device)  # (W,)
    region = (rows[:, None] * 3 + cols[None, :])[None, :, :, None]  # (1, H, W, 1)
    ids = window_partition(region, window).squeeze(-1)  # (nW, N)
    differs = ids[:, None, :] != ids[:, :, None]  # (nW, N, N)
    return torch.where(differs, -100.0, 0.0).to(dtype)


class WindowAttention(nn.Module):
    """W-MSA with a learned relative position bias: qkv Linear -> window_attention op -> proj Linear."""

    def __init__(self, dim: int, num_heads: int, window: tuple[int, int], qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.window = window
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window[0] - 1) * (2 * window[1] - 1), num_heads)
        )
        # Derived from the window size, so not part of the state dict (timm's convention too).
        self.register_buffer("relative_position_index", relative_position_index(*window), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def relative_position_bias(self) -> torch.Tensor:
        """(heads, N, N), gathered from the table (a constant subgraph that ONNX Runtime folds)."""
        n = self.window[0] * self.window[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]  # (N*N, heads)
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # (B*nW, N, C)
        qkv = self.qkv(x)  # (B*nW, N, 3C)
        out = window_attention(qkv, self.relative_position_bias().to(qkv.dtype), mask,
                               num_heads=self.num_heads, scale=self.scale)  # (B*nW, N, C)
        return self.proj(out)


class SwinBlock(nn.Module):
    """Pre-norm Swin block on (B, H, W, C): x + W-MSA/SW-MSA(norm1(x)), then x + MLP(norm2(x)).

    ``shift`` > 0 rolls the map by -shift before partitioning and back after (SW-MSA); the caller
    passes the matching mask (:func:`shifted_window_mask` of the padded size), computed once per
    stage. ``pad``: pad H, W up to whole windows with zeros after the roll and crop after (timm's
    Swin); SwinIR pads the image instead, so its blocks skip this.
    """

    def __init__(self, dim: int, num_heads: int, window: tuple[int, int], shift: tuple[int, int],
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, pad: bool = True):
        super().__init__()
        self.window = window
        self.shift = shift
        self.pad = pad
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _attn(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:  # (B, H, W, C)
        B, H, W, C = x.shape
        shifted = any(self.shift)
        if shifted:
            x = torch.roll(x, shifts=(-self.shift[0], -self.shift[1]), dims=(1, 2))
        if self.pad:  # zeros after the roll, as timm does
            x = F.pad(x, (0, 0, 0, padded_size(W, self.window[1]) - W, 0, padded_size(H, self.window[0]) - H))
        Hp, Wp = x.shape[1], x.shape[2]
        windows = self.attn(window_partition(x, self.window), mask if shifted else None)  # (B*nW, N, C)
        x = window_reverse(windows, self.window, B, Hp, Wp)  # (B, Hp, Wp, C)
        if self.pad:
            x = x[:, :H, :W]
        if shifted:
            x = torch.roll(x, shifts=self.shift, dims=(1, 2))
        return x

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # (B, H, W, C)
        x = x + self._attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))
