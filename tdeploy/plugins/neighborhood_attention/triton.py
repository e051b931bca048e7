"""Fused neighborhood attention in Triton (one kernel: QK^T + rpb + softmax + AV, no attention tensor).

Reads: reference.py (the math) -> the kernel -> the launcher. The same kernel runs in PyTorch on a GPU,
in Triton's interpreter on CPU (``TRITON_INTERPRET=1``), and, compiled to PTX, as the TensorRT AOT
plugin (trt.py).

How a program works. Within one dilation group the op is plain (undilated) neighborhood attention on
the sub-grid ``pixels (g_h + d*y, g_w + d*x)``. A program takes a tile of BLOCK_R x BLOCK_Q queries of
ONE row group and ONE column group (consecutive in group coordinates), flattened to BLOCK_M queries.
Their column windows all lie inside BLOCK_Q + k - 1 consecutive group columns (window starts move by at
most one per query), so one key tile of BLOCK_KV >= BLOCK_Q + k - 1 columns covers them; their row
windows lie inside BLOCK_R + k - 1 consecutive group rows. The program walks those key rows; for each
it loads a (BLOCK_KV, D) tile of K and V, computes the (BLOCK_M, BLOCK_KV) logits with tensor-core
dots, masks every key outside each query's own k x k window, adds the rpb by relative offset, and
folds the tile into an online softmax (fp32 running max / sum / accumulator, as in FlashAttention).

Bytes moved per program: q (BLOCK_M x D), and (BLOCK_R + k - 1) x BLOCK_KV x D of each of K and V;
with BLOCK_R = 4, BLOCK_Q = 16, k = 7: 10 x 32 key rows for 64 queries, i.e. 5 K/V pixels read per
query instead of the 49 an unfused kernel reads (and no (B, heads, H, W, k*k) tensor written).
Compute is (BLOCK_R + k - 1) x BLOCK_KV = 320 logits per query for 49 useful ones: cheap on tensor
cores next to the memory saved.

Small maps (H or W < k*d): the map is treated as zero-padded to k*d at the bottom/right, as in
reference.py. Padded keys are never stored; their loads are masked to 0 (logit 0 + bias, value 0).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634


@triton.jit
def na2d_fwd_kernel(
    # inputs (TensorRT AOT passes input pointers, then the extra int32 scalars, then output pointers)
    QKV,  # (B, H, W, 3, NUM_HEADS, HEAD_DIM) contiguous
    RPB,  # (NUM_HEADS, 2K-1, 2K-1) contiguous; unused when HAS_RPB is False
    H,  # int32 rows
    W,  # int32 columns
    # output
    OUT,  # (B, H, W, NUM_HEADS, HEAD_DIM) contiguous
    NUM_HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    KERNEL_SIZE: tl.constexpr,
    DILATION: tl.constexpr,
    SCALE: tl.constexpr,  # logit scale (constexpr: TensorRT AOT extra args are int32 only)
    HAS_RPB: tl.constexpr,
    DOT_FP32: tl.constexpr,  # dots in fp32 (IEEE): fp32 inputs, and bf16 under the interpreter (below)
    BLOCK_R: tl.constexpr,  # query rows per program (same row dilation group)
    BLOCK_Q: tl.constexpr,  # query columns per program (same column dilation group)
    BLOCK_KV: tl.constexpr,  # key columns per tile, power of two >= BLOCK_Q + K - 1
    BLOCK_D: tl.constexpr,  # HEAD_DIM padded to a power of two (masked)
):
    NS: tl.constexpr = KERNEL_SIZE // 2
    C: tl.constexpr = NUM_HEADS * HEAD_DIM
    NB: tl.constexpr = 2 * KERNEL_SIZE - 1  # rpb side
    BLOCK_M: tl.constexpr = BLOCK_R * BLOCK_Q
    KD: tl.constexpr = KERNEL_SIZE * DILATION

    # batch x heads on grid x (up to 2**31 - 1 programs; y and z stop at 65535), the map on y and z.
    pid_bh = tl.program_id(0)  # batch * NUM_HEADS + head
    pid_w = tl.program_id(1)  # column group g_w + DILATION * column block
    pid_h = tl.program_id(2)  # row group g_h + DILATION * row block
    b = pid_bh // NUM_HEADS
    head = pid_bh % NUM_HEADS
    g_w = pid_w % DILATION
    g_h = pid_h % DILATION
    blk_w = pid_w // DILATION
    blk_h = pid_h // DILATION
    # The grid is sized for the largest group; smaller groups (and maps with H or W < DILATION)
    # leave some programs without a single query: they exit at once.
    if (blk_h * BLOCK_R * DILATION + g_h >= H) | (blk_w * BLOCK_Q * DILATION + g_w >= W):
        return

    # Padded sizes and the number of pixels of this program's groups (>= K once padded to K*D).
    Hp = tl.maximum(H, KD)
    Wp = tl.maximum(W, KD)
    lg_h = (Hp - g_h + DILATION - 1) // DILATION
    lg_w = (Wp - g_w + DILATION - 1) // DILATION

    # ---- the BLOCK_M queries, in group coordinates (p_h, p_w) and pixels (i, j)
    m = tl.arange(0, BLOCK_M)
    p_h = blk_h * BLOCK_R + m // BLOCK_Q  # (BLOCK_M,)
    p_w = blk_w * BLOCK_Q + m % BLOCK_Q
    i = p_h * DILATION + g_h
    j = p_w * DILATION + g_w
    q_valid = (i < H) & (j < W)
    # window starts (group coordinates): centred, shifted inward at the borders
    s_h = tl.minimum(tl.maximum(p_h - NS, 0), lg_h - KERNEL_SIZE)
    s_w = tl.minimum(tl.maximum(p_w - NS, 0), lg_w - KERNEL_SIZE)

    # ---- the key tile: group columns u_w = c0_w + n, rows u_h = c0_h + r (r < BLOCK_R + K - 1)
    c0_w = tl.minimum(tl.maximum(blk_w * BLOCK_Q - NS, 0), lg_w - KERNEL_SIZE)
    c0_h = tl.minimum(tl.maximum(blk_h * BLOCK_R - NS, 0), lg_h - KERNEL_SIZE)
    n = tl.arange(0, BLOCK_KV)
    u_w = c0_w + n  # (BLOCK_KV,)
    col = u_w * DILATION + g_w
    a_w = u_w[None, :] - s_w[:, None]  # (BLOCK_M, BLOCK_KV) position inside each query's window
    in_w = (a_w >= 0) & (a_w < KERNEL_SIZE)
    bias_w = (KERNEL_SIZE - 1) + u_w[None, :] - p_w[:, None]  # rpb column = relative offset + K - 1

    d = tl.arange(0, BLOCK_D)
    d_ok = d < HEAD_DIM
    # int64 base offsets: B*H*W*3C can pass 2^31 at large batch / resolution
    base = b.to(tl.int64) * H * W * (3 * C) + head * HEAD_DIM
    q_ptrs = QKV + base + (i * W + j).to(tl.int64)[:, None] * (3 * C) + d[None, :]
    q = tl.load(q_ptrs, mask=q_valid[:, None] & d_ok[None, :], other=0.0)  # (BLOCK_M, BLOCK_D)
    if DOT_FP32:
        q = q.to(tl.float32)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running max (log2 domain)
    l_i = tl.zeros([BLOCK_M], tl.float32)  # running sum of exp2
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    qk_scale = SCALE * 1.4426950408889634  # fold log2(e): exp2 is cheaper than exp

    for r in range(BLOCK_R + KERNEL_SIZE - 1):
        u_h = c0_h + r  # key row, group coordinates (scalar)
        row = u_h * DILATION + g_h
        a_h = u_h - s_h  # (BLOCK_M,)
        in_win = ((a_h >= 0) & (a_h < KERNEL_SIZE))[:, None] & in_w  # (BLOCK_M, BLOCK_KV)
        # Keys beyond H or W are the zero padding of small maps: load 0, keep them in the softmax.
        kv_ok = ((row < H) & (col < W))[:, None] & d_ok[None, :]
        kv_off = base + (row * W + col).to(tl.int64)[:, None] * (3 * C) + d[None, :]
        k = tl.load(QKV + kv_off + C, mask=kv_ok, other=0.0)  # (BLOCK_KV, BLOCK_D)
        v = tl.load(QKV + kv_off + 2 * C, mask=kv_ok, other=0.0)

        if DOT_FP32:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
            s = tl.dot(q, tl.trans(k), input_precision="ieee")  # no TF32 rounding
        else:
            s = tl.dot(q, tl.trans(k))  # fp16/bf16 inputs, fp32 accumulation
        s = s * qk_scale
        if HAS_RPB:
            bias_h = (KERNEL_SIZE - 1) + u_h - p_h  # (BLOCK_M,)
            b_ptrs = RPB + head * NB * NB + bias_h[:, None] * NB + bias_w
            s += tl.load(b_ptrs, mask=in_win, other=0.0).to(tl.float32) * 1.4426950408889634
        s = tl.where(in_win, s, float("-inf"))

        # online softmax; every query has K in-window keys in its first window row, so m_new is
        # finite from then on, and rows outside the window (all -inf) leave the state unchanged
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_safe)
        p = tl.exp2(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        if DOT_FP32:
            acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    out = acc / l_i[:, None]
    o_ptrs = OUT + b.to(tl.int64) * H * W * C + head * HEAD_DIM
    o_ptrs += (i * W + j).to(tl.int64)[:, None] * C + d[None, :]
    tl.store(o_ptrs, out.to(OUT.dtype.element_ty), mask=q_valid[:, None] & d_ok[None, :])


# ---------------------------------------------------------------------------------------------- launcher


def kernel_config(kernel_size: int, dilation: int, head_dim: int) -> dict:
    """Tile sizes; depend on the attributes only (not on H, W), so TensorRT AOT can use them too.

    BLOCK_Q = 16 query columns: the smallest tensor-core M; BLOCK_KV = next power of two of 16 + k - 1
    (32 for k <= 17). BLOCK_R = 4 rows reuse each loaded key row for 4 query rows (fewer for wide
    heads, to bound registers: the (BLOCK_M, BLOCK_D) fp32 accumulator).
    """
    block_q = 16
    block_d = max(16, triton.next_power_of_2(head_dim))
    block_r = 4 if block_d <= 64 else 2
    return {
        "BLOCK_R": block_r,
        "BLOCK_Q": block_q,
        "BLOCK_KV": triton.next_power_of_2(block_q + kernel_size - 1),
        "BLOCK_D": block_d,
        "num_warps": 4,
    }


def dot_fp32(dtype: torch.dtype, *, interpreted: bool) -> bool:
    """fp32 inputs get IEEE fp32 dots (not TF32). Triton 3.5's interpreter computes tl.dot on bf16
    operands wrongly (it multiplies raw bits), so there bf16 tiles are upcast first; on GPUs bf16 dots
    run on tensor cores."""
    return dtype == torch.float32 or (interpreted and dtype == torch.bfloat16)


def grid(B: int, H: int, W: int, num_heads: int, dilation: int, cfg: dict) -> tuple[int, int, int]:
    """(B * heads, column blocks x groups, row blocks x groups); group 0 is the largest group.

    B * heads goes on x, the only axis past 65535: batch 2048 with 32 heads is 65536 programs.
    """
    cdiv = triton.cdiv
    return (
        B * num_heads,
        dilation * cdiv(cdiv(W, dilation), cfg["BLOCK_Q"]),
        dilation * cdiv(cdiv(H, dilation), cfg["BLOCK_R"]),
    )


def neighborhood_attention_triton(
    qkv: torch.Tensor,
    rpb: torch.Tensor | None,
    *,
    num_heads: int,
    kernel_size: int,
    dilation: int,
    scale: float,
) -> torch.Tensor:
    """qkv (B, H, W, 3*C) -> (B, H, W, C), same dtype. Arguments are checked by the caller."""
    B, H, W, C3 = qkv.shape
    C = C3 // 3
    head_dim = C // num_heads
    qkv = qkv.contiguous()
    out = torch.empty((B, H, W, C), device=qkv.device, dtype=qkv.dtype)
    has_rpb = rpb is not None
    rpb_arg = rpb.contiguous() if has_rpb else qkv  # any dtype (read as fp32); dummy pointer when absent
    cfg = kernel_config(kernel_size, dilation, head_dim)
    na2d_fwd_kernel[grid(B, H, W, num_heads, dilation, cfg)](
        qkv,
        rpb_arg,
        H,
        W,
        out,
        NUM_HEADS=num_heads,
        HEAD_DIM=head_dim,
        KERNEL_SIZE=kernel_size,
        DILATION=dilation,
        SCALE=float(scale),
        HAS_RPB=has_rpb,
        DOT_FP32=dot_fp32(qkv.dtype, interpreted=type(na2d_fwd_kernel).__name__ == "InterpretedFunction"),
        **cfg,
    )
    return out
