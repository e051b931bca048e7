"""The functional entry point and the one torch custom op that every backend (and export) goes through.

``neighborhood_attention(...)`` checks its arguments, picks a backend and calls
``torch.ops.tdeploy.neighborhood_attention``. Because the call is a single custom op with a fake (meta)
implementation, ``torch.export`` and ``torch.onnx.export(dynamo=True)`` see one node whatever backend
runs eagerly; ``onnx.py`` translates that node to the ``tdeploy::NeighborhoodAttention2D`` ONNX node.
"""

from __future__ import annotations

import torch

from tdeploy.errors import TdeployError
from tdeploy.plugins.autograd import register_reference_autograd
from tdeploy.plugins.backends import BACKENDS, DTYPES, choose_backend, dtype_problem, triton_problem
from tdeploy.plugins.neighborhood_attention.reference import neighborhood_attention_reference

MAX_KERNEL_SIZE_TRITON = 31  # tested 3..13, 19, 31; larger k only grows the key tile
MAX_HEAD_DIM_TRITON = 256  # tested 16..128; the (BLOCK_M, head_dim) fp32 accumulator lives in registers


def _check_args(
    qkv: torch.Tensor, rpb: torch.Tensor | None, num_heads: int, kernel_size: int, dilation: int
) -> int:
    """One-line errors for everything a caller can get wrong; returns head_dim. Never reads H or W
    (they may be symbolic under torch.export; every H, W >= 1 is valid, small maps are padded)."""
    name = "neighborhood_attention"
    if qkv.dim() != 4:
        raise TdeployError(f"{name}: qkv must be (B, H, W, 3*C), got {qkv.dim()}-D shape {tuple(qkv.shape)}")
    if qkv.dtype not in DTYPES:
        raise TdeployError(
            f"{name}: qkv dtype {qkv.dtype} is not supported; use float32, float16 or bfloat16 (float64: the "
            "reference backend)"
        )
    if not isinstance(num_heads, int) or num_heads < 1:
        raise TdeployError(f"{name}: num_heads must be a positive int, got {num_heads!r}")
    if not isinstance(kernel_size, int) or kernel_size < 3 or kernel_size % 2 == 0:
        raise TdeployError(f"{name}: kernel_size must be an odd int >= 3, got {kernel_size!r}")
    if not isinstance(dilation, int) or dilation < 1:
        raise TdeployError(f"{name}: dilation must be an int >= 1, got {dilation!r}")
    c3 = qkv.shape[-1]
    if c3 % (3 * num_heads) != 0:
        raise TdeployError(
            f"{name}: last dim of qkv ({c3}) must be 3 * num_heads * head_dim (num_heads={num_heads}); "
            "pass the output of the qkv Linear unchanged"
        )
    if rpb is not None:
        nb = 2 * kernel_size - 1
        if tuple(rpb.shape) != (num_heads, nb, nb):
            raise TdeployError(
                f"{name}: rpb must be (num_heads, 2k-1, 2k-1) = ({num_heads}, {nb}, {nb}), got {tuple(rpb.shape)}"
            )
        if not rpb.is_floating_point():
            raise TdeployError(f"{name}: rpb must be a floating-point tensor, got {rpb.dtype}")
        if rpb.device != qkv.device:
            raise TdeployError(
                f"{name}: rpb is on {rpb.device} but qkv on {qkv.device}; move both to one device"
            )
    return c3 // (3 * num_heads)


def _kernel():
    from tdeploy.plugins.neighborhood_attention.triton import na2d_fwd_kernel

    return na2d_fwd_kernel


def backend_problem(backend: str, qkv: torch.Tensor, kernel_size: int, head_dim: int) -> str | None:
    """None when ``backend`` can compute these arguments, else the reason why not (one line)."""
    if backend == "reference":
        return None
    if backend != "triton":
        return f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}"
    if kernel_size > MAX_KERNEL_SIZE_TRITON:
        return f"kernel_size {kernel_size} > {MAX_KERNEL_SIZE_TRITON} is not supported by the Triton kernel"
    if head_dim > MAX_HEAD_DIM_TRITON:
        return f"head_dim {head_dim} > {MAX_HEAD_DIM_TRITON} is not supported by the Triton kernel"
    return dtype_problem(qkv.dtype) or triton_problem(_kernel, qkv.device)


# ---- the torch custom op: what torch.export records and torch.onnx translates
@torch.library.custom_op("tdeploy::neighborhood_attention", mutates_args=())
def _neighborhood_attention_op(
    qkv: torch.Tensor,
    rpb: torch.Tensor | None,
    num_heads: int,
    kernel_size: int,
    dilation: int,
    scale: float,
    backend: str,
) -> torch.Tensor:
    kwargs = dict(num_heads=num_heads, kernel_size=kernel_size, dilation=dilation, scale=scale)
    if backend == "triton":
        from tdeploy.plugins.neighborhood_attention.triton import neighborhood_attention_triton

        return neighborhood_attention_triton(qkv, rpb, **kwargs)
    return neighborhood_attention_reference(qkv, rpb, **kwargs)


@_neighborhood_attention_op.register_fake
def _(qkv, rpb, num_heads, kernel_size, dilation, scale, backend):
    B, H, W, C3 = qkv.shape  # (B, H, W, 3C) -> (B, H, W, C); H, W may be symbolic
    return qkv.new_empty((B, H, W, C3 // 3))


def flop_count(qkv_shape, rpb_shape, num_heads, kernel_size, dilation, scale, backend, *, out_shape=None) -> int:
    """FLOPs of one call, as torch.utils.flop_counter counts (2 per multiply-add): each query meets k*k
    keys, q.k and attn.v are 2*k^2*head_dim each per head, so 4*k^2*C per token (C = heads * head_dim)."""
    b, h, w, three_c = qkv_shape
    return 4 * b * h * w * kernel_size * kernel_size * (three_c // 3)


# Training through the op: gradients of the reference math (see plugins/autograd.py).
register_reference_autograd(
    _neighborhood_attention_op,
    lambda qkv, rpb, num_heads, kernel_size, dilation, scale, backend: neighborhood_attention_reference(
        qkv, rpb, num_heads=num_heads, kernel_size=kernel_size, dilation=dilation, scale=scale),
)


def neighborhood_attention(
    qkv: torch.Tensor,
    rpb: torch.Tensor | None = None,
    *,
    num_heads: int,
    kernel_size: int,
    dilation: int = 1,
    scale: float | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """2-D neighborhood attention with NATTEN 0.17 semantics (gradients: those of the reference).

    qkv: (B, H, W, 3*C), the qkv Linear's output, i.e. (B, H, W, 3, num_heads, head_dim).
    rpb: (num_heads, 2k-1, 2k-1) relative position bias, or None.
    scale: logit scale, default head_dim ** -0.5.
    backend: None (Triton on CUDA tensors, else reference), "reference" or "triton" (Triton on CUDA,
        or interpreted on CPU under TRITON_INTERPRET=1). Every backend goes through one torch custom
        op, which exports as one ONNX node.
    Returns (B, H, W, C) in qkv's dtype. Maps smaller than k*dilation are zero padded (README.md).
    """
    head_dim = _check_args(qkv, rpb, num_heads, kernel_size, dilation)
    scale = float(head_dim**-0.5 if scale is None else scale)
    resolved = choose_backend("neighborhood_attention", backend, qkv.device,
                              lambda b: backend_problem(b, qkv, kernel_size, head_dim))
    return torch.ops.tdeploy.neighborhood_attention(qkv, rpb, num_heads, kernel_size, dilation, scale, resolved)
