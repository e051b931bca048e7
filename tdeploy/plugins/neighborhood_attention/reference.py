"""Neighborhood attention in plain PyTorch: THE definition of correctness for this op.

Semantics are those of NATTEN 0.17's ``NeighborhoodAttention2D`` (``na2d_qk`` with rpb, softmax,
``na2d_av``), extended to feature maps smaller than ``kernel_size * dilation`` by zero padding (see
:func:`padded_length`). Everything here works one axis at a time: the 2-D neighborhood of pixel
(i, j) is the product of the 1-D neighborhood of row i and the 1-D neighborhood of column j.

One axis of length ``L`` (after padding to ``Lp = max(L, k*d)``), kernel ``k`` (odd), dilation ``d``:

- pixel ``i`` belongs to dilation group ``g = i % d`` and sits at position ``p = i // d`` inside it;
  the group holds ``Lg = ceil((Lp - g) / d)`` pixels (``>= k`` because ``Lp >= k*d``);
- its window starts at group position ``s = clamp(p - k//2, 0, Lg - k)``: centred, shifted inward
  at the borders so it always holds k pixels (NATTEN 0.17 ``get_window_start``);
- neighbor ``a`` (0 <= a < k) is pixel ``(s + a) * d + g``;
- its bias index along this axis is ``(k - 1) + (s + a - p)``: the relative offset, in dilated
  steps, shifted into 0 .. 2k-2 (NATTEN 0.17 ``get_pb_start(i) + a``; the tests check both agree).
"""

from __future__ import annotations

import torch


def padded_length(length: int, kernel_size: int, dilation: int) -> int:
    """Length after the op's zero padding: maps smaller than ``k*d`` are padded at the end to ``k*d``."""
    return max(length, kernel_size * dilation)


def neighbor_indices(
    length: int, kernel_size: int, dilation: int, *, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbors and bias indices along one axis.

    Returns ``(idx, bias_idx)``, both int64 of shape (length, kernel_size): ``idx[i, a]`` is the
    a-th neighbor of pixel i (in the padded axis of :func:`padded_length`), ``bias_idx[i, a]`` its
    index into the rpb axis (0 .. 2k-2).
    """
    k, d = kernel_size, dilation
    lp = padded_length(length, k, d)
    i = torch.arange(length, device=device)  # (L,) query positions (padded queries are never needed)
    g = i % d  # dilation group
    p = i // d  # position inside the group
    lg = (lp - g + d - 1) // d  # pixels in the group, >= k
    s = torch.minimum((p - k // 2).clamp(min=0), lg - k)  # window start, group coordinates
    a = torch.arange(k, device=device)  # (k,)
    idx = (s[:, None] + a) * d + g[:, None]  # (L, k)
    bias_idx = (k - 1) + (s - p)[:, None] + a  # (L, k)
    return idx, bias_idx


def neighborhood_attention_reference(
    qkv: torch.Tensor,
    rpb: torch.Tensor | None,
    *,
    num_heads: int,
    kernel_size: int,
    dilation: int = 1,
    scale: float | None = None,
) -> torch.Tensor:
    """Unfused neighborhood attention, computed in fp32 (in float64 for float64 inputs: gradcheck).

    qkv: (B, H, W, 3*C), packed as NAT's qkv Linear produces it: (B, H, W, 3, heads, head_dim).
    rpb: (heads, 2k-1, 2k-1) or None.
    Returns (B, H, W, C) in qkv's dtype.
    """
    B, H, W, C3 = qkv.shape
    k, d = kernel_size, dilation
    hd = C3 // (3 * num_heads)
    scale = hd**-0.5 if scale is None else scale
    Hp, Wp = padded_length(H, k, d), padded_length(W, k, d)

    acc = torch.promote_types(qkv.dtype, torch.float32)
    x = qkv.to(acc)
    if (Hp, Wp) != (H, W):  # small map: zero qkv rows/columns at the bottom/right
        x = torch.nn.functional.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))
    x = x.reshape(B, Hp, Wp, 3, num_heads, hd).permute(3, 0, 4, 1, 2, 5)  # (3, B, heads, Hp, Wp, hd)
    q, key, val = x[0, :, :, :H, :W], x[1], x[2]  # q: (B, heads, H, W, hd); key/val padded

    idx_h, bias_h = neighbor_indices(H, k, d, device=qkv.device)  # (H, k)
    idx_w, bias_w = neighbor_indices(W, k, d, device=qkv.device)  # (W, k)

    # Gather the k x k neighbors of every query: (B, heads, H, k, W, k, hd) -> (B, heads, H, W, k*k, hd)
    def gather(t: torch.Tensor) -> torch.Tensor:
        t = t[:, :, idx_h]  # (B, heads, H, k, Wp, hd)
        t = t[:, :, :, :, idx_w]  # (B, heads, H, k, W, k, hd)
        return t.permute(0, 1, 2, 4, 3, 5, 6).reshape(B, num_heads, H, W, k * k, hd)

    kn, vn = gather(key), gather(val)
    attn = torch.einsum("bnhwd,bnhwkd->bnhwk", q, kn) * scale  # (B, heads, H, W, k*k)
    if rpb is not None:
        bias = rpb.to(acc)[:, bias_h[:, :, None, None], bias_w[None, None, :, :]]  # (heads, H, k, W, k)
        attn = attn + bias.permute(0, 1, 3, 2, 4).reshape(num_heads, H, W, k * k)
    attn = attn.softmax(dim=-1)
    out = torch.einsum("bnhwk,bnhwkd->bnhwd", attn, vn)  # (B, heads, H, W, hd)
    return out.permute(0, 2, 3, 1, 4).reshape(B, H, W, num_heads * hd).to(qkv.dtype)
