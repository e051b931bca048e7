"""Window attention in plain PyTorch: THE definition of correctness for every other backend.

    out[b, n, h*D:(h+1)*D] = sum_m softmax_m(q[b,h,n] . k[b,h,m] * scale + bias[h,n,m] + mask[b % nW, n, m]) v[b,h,m]

This is the unfused form: it materialises the (B*nW, heads, N, N) score matrix. Readable first, fast
never; the Triton kernel in ``triton.py`` computes the same thing without writing scores to memory.
"""

from __future__ import annotations

import torch

from tdeploy.errors import TdeployError
from tdeploy.plugins.backends import DTYPES


def check_shapes(qkv: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor | None, num_heads: int) -> None:
    """Raise a one-line :class:`TdeployError` when the inputs do not describe a window attention."""
    if qkv.dim() != 3:
        raise TdeployError(f"window_attention: qkv must be (B*nW, N, 3*C), got shape {tuple(qkv.shape)}")
    if qkv.dtype not in DTYPES:
        raise TdeployError(f"window_attention: qkv dtype {qkv.dtype} is not supported; use float32, float16 or "
                           "bfloat16 (float64: the reference backend)")
    for name, t in (("bias", bias), ("mask", mask)):
        if t is None:
            continue
        if not t.is_floating_point():
            raise TdeployError(f"window_attention: {name} must be a floating-point tensor, got {t.dtype}")
        if t.device != qkv.device:
            raise TdeployError(f"window_attention: {name} is on {t.device} but qkv on {qkv.device}; move both "
                               "to one device")
    windows, n, three_c = qkv.shape
    if num_heads < 1 or three_c % (3 * num_heads) != 0:
        raise TdeployError(
            f"window_attention: qkv last dim {three_c} is not divisible by 3*num_heads={3 * num_heads}; "
            "pass the qkv Linear output (B*nW, N, 3*heads*head_dim) and the model's num_heads"
        )
    if tuple(bias.shape) != (num_heads, n, n):
        raise TdeployError(
            f"window_attention: bias must be (num_heads, N, N) = ({num_heads}, {n}, {n}), "
            f"got {tuple(bias.shape)}; gather the relative position bias table before the call"
        )
    if mask is not None:
        if mask.dim() != 3 or tuple(mask.shape[1:]) != (n, n):
            raise TdeployError(f"window_attention: mask must be (nW, {n}, {n}), got {tuple(mask.shape)}")
        # torch.export traces with symbolic sizes: only check what is concrete.
        n_win = mask.shape[0]
        if isinstance(windows, int) and isinstance(n_win, int) and (n_win == 0 or windows % n_win != 0):
            raise TdeployError(
                f"window_attention: mask has nW={n_win} windows, which does not divide the qkv batch "
                f"B*nW={windows}; the mask must have one (N, N) slice per window of an image"
            )


def window_attention_reference(
    qkv: torch.Tensor,  # (B*nW, N, 3*C)
    bias: torch.Tensor,  # (heads, N, N)
    mask: torch.Tensor | None,  # (nW, N, N) or None
    num_heads: int,
    scale: float,
) -> torch.Tensor:  # (B*nW, N, C), qkv's dtype
    windows, n, three_c = qkv.shape
    c = three_c // 3
    head_dim = c // num_heads
    # (B*nW, N, 3, heads, D) -> (3, B*nW, heads, N, D): the layout timm's Swin uses.
    acc = torch.promote_types(qkv.dtype, torch.float32)  # fp32 accumulation (fp64 stays fp64)
    q, k, v = qkv.reshape(windows, n, 3, num_heads, head_dim).permute(2, 0, 3, 1, 4).to(acc).unbind(0)
    attn = (q * scale) @ k.transpose(-2, -1)  # (B*nW, heads, N, N)
    attn = attn + bias.to(acc).unsqueeze(0)
    if mask is not None:
        n_win = mask.shape[0]
        # Window b uses mask[b % nW]: windows of one image are contiguous, images follow each other.
        attn = attn.view(-1, n_win, num_heads, n, n) + mask.to(acc).unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, num_heads, n, n)
    attn = attn.softmax(dim=-1)
    out = attn @ v  # (B*nW, heads, N, D)
    return out.transpose(1, 2).reshape(windows, n, c).to(qkv.dtype)
