"""Fused window attention in Triton: one program per (window, head, block of query rows).

Reads reference -> kernel -> launcher. The (N, N) scores live only in registers: each program loads
its query rows once, streams the window's keys/values in BLOCK_N chunks with an online softmax
(running max and sum, as in FlashAttention), and writes its (BLOCK_M, D) output slice once.

Bytes moved per call (the roofline the benchmark compares against):
    qkv read  B*nW * N * 3C * elt      (K/V are re-read once per extra query block, from L2)
    out write B*nW * N * C  * elt
    bias      heads * N * N * elt      (shared by all windows: stays in L2)
    mask      nW * N * N * elt         (shared by all images: stays in L2)
No N x N tensor is ever written to global memory.

The same kernel runs in three places: launched by :func:`window_attention_triton` on a CUDA tensor,
under TRITON_INTERPRET=1 on CPU tensors (tests), and compiled to PTX for the TensorRT AOT plugin
(``trt.py``). Its runtime parameters are therefore ordered the way TensorRT's AOT launch passes them:
input pointers, then extra int32 scalars, then output pointers (see README.md).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def window_attention_kernel(
    QKV,  # *T (B*nW, N, 3*C), contiguous: [.., 0:C] = q, [.., C:2C] = k, [.., 2C:3C] = v
    BIAS,  # *T (HEADS, N, N)
    MASK,  # *T (n_win, N, N); not read when HAS_MASK is False (any pointer will do)
    n_win,  # i32: windows per image (nW); window b uses MASK[b % n_win]
    OUT,  # *T (B*nW, N, C)
    SCALE: tl.constexpr,  # float: multiplies q.k (baked in: TensorRT's AOT extras are int32 only)
    N: tl.constexpr,  # tokens per window
    HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    HAS_MASK: tl.constexpr,
    BLOCK_M: tl.constexpr,  # query rows per program
    BLOCK_N: tl.constexpr,  # keys per inner step
    BLOCK_D: tl.constexpr,  # HEAD_DIM padded to a power of two (tl.arange and tl.dot need one)
    DOT_FP32: tl.constexpr,  # dots on fp32 operands at full precision (fp32 inputs: no TF32 rounding)
):
    C: tl.constexpr = HEADS * HEAD_DIM
    LOG2E: tl.constexpr = 1.4426950408889634
    window = tl.program_id(0)
    head = tl.program_id(1)
    m_block = tl.program_id(2)

    # int64 window offset: B*nW*N*3C passes 2**31 for large images at 16x16 windows.
    qkv_base = QKV + window.to(tl.int64) * (N * 3 * C) + head * HEAD_DIM
    out_base = OUT + window.to(tl.int64) * (N * C) + head * HEAD_DIM

    offs_m = m_block * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,) query rows
    offs_d = tl.arange(0, BLOCK_D)  # (BLOCK_D,) channel, padded
    row_ok = offs_m < N
    d_ok = offs_d < HEAD_DIM

    # q: (BLOCK_M, BLOCK_D); padded rows/channels load 0 so they add nothing to the dots.
    q = tl.load(qkv_base + offs_m[:, None] * (3 * C) + offs_d[None, :], mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    if DOT_FP32:
        q = q.to(tl.float32)

    # Softmax in base 2: exp2 is one MUFU instruction, exp is exp2 plus a multiply.
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)  # running row max (log2 units)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)  # running row sum of exp2
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)  # running p @ v

    bias_base = BIAS + head * (N * N)
    mask_base = MASK + (window % n_win).to(tl.int64) * (N * N)
    for start_n in range(0, N, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)  # (BLOCK_N,) key index
        col_ok = offs_n < N
        kv_mask = col_ok[:, None] & d_ok[None, :]
        k = tl.load(qkv_base + C + offs_n[:, None] * (3 * C) + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(qkv_base + 2 * C + offs_n[:, None] * (3 * C) + offs_d[None, :], mask=kv_mask, other=0.0)

        if DOT_FP32:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
            s = tl.dot(q, tl.trans(k), input_precision="ieee")  # (BLOCK_M, BLOCK_N) fp32
        else:
            s = tl.dot(q, tl.trans(k))  # fp16/bf16 operands, fp32 accumulator
        nm_offs = offs_m[:, None] * N + offs_n[None, :]
        nm_ok = row_ok[:, None] & col_ok[None, :]
        add = tl.load(bias_base + nm_offs, mask=nm_ok, other=0.0).to(tl.float32)
        if HAS_MASK:
            add += tl.load(mask_base + nm_offs, mask=nm_ok, other=0.0).to(tl.float32)
        s = (s * SCALE + add) * LOG2E
        # Keys past N must get zero weight; padded query rows keep finite scores (no NaN) and are not stored.
        s = tl.where(col_ok[None, :], s, float("-inf"))

        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)  # rescales what was accumulated under the old max (0 on step 1)
        p = tl.exp2(s - m_new[:, None])  # (BLOCK_M, BLOCK_N)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        if DOT_FP32:
            acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    acc = acc / l_i[:, None]
    tl.store(
        out_base + offs_m[:, None] * C + offs_d[None, :],
        acc.to(OUT.dtype.element_ty),
        mask=row_ok[:, None] & d_ok[None, :],
    )


# Triton's CPU interpreter computes bf16 dots wrongly (numpy has no bf16): there, bf16 operands are
# upcast and the dots run in fp32. On a GPU bf16 goes to the tensor cores like fp16.
_INTERPRETED = type(window_attention_kernel).__name__ == "InterpretedFunction"


def dot_fp32(dtype: torch.dtype, interpreted: bool = False) -> bool:
    return dtype == torch.float32 or (interpreted and dtype == torch.bfloat16)


def block_config(n: int, head_dim: int) -> dict:
    """Block sizes and warps for a window of ``n`` tokens and a head of ``head_dim`` channels.

    Windows are small (49 to 256 tokens), so one program covers up to 64 query rows against 64 keys
    per step: 7x7 and 8x8 windows are a single step with one program per (window, head) (no K/V
    re-reads), and a (64, 64) fp32 score tile is 32 registers per thread at 4 warps. tl.dot needs
    every block dimension >= 16 and a power of two, hence the clamps and the padded head dim.
    """
    block = max(16, min(64, triton.next_power_of_2(n)))
    block_d = max(16, triton.next_power_of_2(head_dim))
    return {
        "BLOCK_M": block,
        "BLOCK_N": block,
        "BLOCK_D": block_d,
        "num_warps": 4 if block_d <= 64 else 8,
        "num_stages": 2,
    }


def grid(windows, num_heads: int, n: int, block_m: int) -> tuple:
    """(B*nW, heads, query blocks): window on axis 0, the only axis allowed past 65535."""
    return (windows, num_heads, triton.cdiv(n, block_m))


def window_attention_triton(
    qkv: torch.Tensor,  # (B*nW, N, 3*C)
    bias: torch.Tensor,  # (heads, N, N)
    mask: torch.Tensor | None,  # (nW, N, N) or None
    num_heads: int,
    scale: float,
) -> torch.Tensor:  # (B*nW, N, C)
    windows, n, three_c = qkv.shape
    c = three_c // 3
    head_dim = c // num_heads
    qkv = qkv.contiguous()
    # One dtype for all operands: the kernel reads bias/mask as the model's dtype, like TensorRT does.
    bias = bias.to(qkv.dtype).contiguous()
    has_mask = mask is not None
    mask = mask.to(qkv.dtype).contiguous() if has_mask else bias  # placeholder pointer, never read
    n_win = mask.shape[0] if has_mask else 1
    out = torch.empty((windows, n, c), dtype=qkv.dtype, device=qkv.device)
    if windows == 0:
        return out
    cfg = block_config(n, head_dim)
    window_attention_kernel[grid(windows, num_heads, n, cfg["BLOCK_M"])](
        qkv,
        bias,
        mask,
        n_win,
        out,
        SCALE=float(scale),
        N=n,
        HEADS=num_heads,
        HEAD_DIM=head_dim,
        HAS_MASK=has_mask,
        DOT_FP32=dot_fp32(qkv.dtype, interpreted=_INTERPRETED),
        **cfg,
    )
    return out
