"""The functional entry point and the one torch custom op that every backend (and export) goes through.

``window_attention(...)`` checks shapes, picks a backend and calls ``torch.ops.tdeploy.window_attention``.
Because the call is a single custom op with a fake (meta) implementation, ``torch.export`` and
``torch.onnx.export(dynamo=True)`` see one node whatever backend runs eagerly; ``onnx.py`` translates
that node to the ``tdeploy::WindowAttention`` ONNX node.
"""

from __future__ import annotations

import torch

from tdeploy.plugins.autograd import register_reference_autograd
from tdeploy.plugins.backends import BACKENDS, choose_backend, dtype_problem, triton_problem
from tdeploy.plugins.window_attention.reference import check_shapes, window_attention_reference


def _kernel():
    from tdeploy.plugins.window_attention.triton import window_attention_kernel

    return window_attention_kernel


def backend_problem(backend: str, qkv: torch.Tensor) -> str | None:
    """None when ``backend`` can compute window attention on ``qkv``, else the reason why not."""
    if backend == "reference":
        return None
    if backend == "triton":
        return dtype_problem(qkv.dtype) or triton_problem(_kernel, qkv.device)
    return f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}"


@torch.library.custom_op("tdeploy::window_attention", mutates_args=())
def _window_attention_op(
    qkv: torch.Tensor,
    bias: torch.Tensor,
    mask: torch.Tensor | None,
    num_heads: int,
    scale: float,
    backend: str,
) -> torch.Tensor:
    if backend == "triton":
        from tdeploy.plugins.window_attention.triton import window_attention_triton

        return window_attention_triton(qkv, bias, mask, num_heads, scale)
    return window_attention_reference(qkv, bias, mask, num_heads, scale)


@_window_attention_op.register_fake
def _(qkv, bias, mask, num_heads, scale, backend):
    check_shapes(qkv, bias, mask, num_heads)
    windows, n, three_c = qkv.shape
    return qkv.new_empty((windows, n, three_c // 3))


def flop_count(qkv_shape, bias_shape, mask_shape, num_heads, scale, backend, *, out_shape=None) -> int:
    """FLOPs of one call, as torch.utils.flop_counter counts (2 per multiply-add): q.k^T and attn.v are
    2*N*N*head_dim each per head, so 4*N^2*C per window of N tokens (C = heads * head_dim)."""
    windows, n, three_c = qkv_shape
    return 4 * windows * n * n * (three_c // 3)


# Training through the op: gradients of the reference math (see plugins/autograd.py).
register_reference_autograd(
    _window_attention_op,
    lambda qkv, bias, mask, num_heads, scale, backend: window_attention_reference(qkv, bias, mask, num_heads, scale),
)


def window_attention(
    qkv: torch.Tensor,
    bias: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    num_heads: int,
    scale: float | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Multi-head self-attention inside windows, as Swin/SwinIR compute it.

    Args:
        qkv: (B*nW, N, 3*C), the qkv Linear output: reshapes to (B*nW, N, 3, heads, head_dim).
        bias: (heads, N, N), the relative position bias gathered from its table.
        mask: (nW, N, N) additive mask of shifted windows, or None. Window b uses mask[b % nW].
        num_heads: heads; C = num_heads * head_dim.
        scale: multiplies q.k; default head_dim ** -0.5.
        backend: None (triton on CUDA when installed, else reference), "reference" or "triton".

    Returns:
        (B*nW, N, C) in qkv's dtype (fp32 accumulation inside).
    """
    check_shapes(qkv, bias, mask, num_heads)
    head_dim = qkv.shape[-1] // (3 * num_heads)
    scale = float(head_dim**-0.5 if scale is None else scale)
    resolved = choose_backend("window_attention", backend, qkv.device, lambda b: backend_problem(b, qkv))
    return torch.ops.tdeploy.window_attention(qkv, bias, mask, num_heads, scale, resolved)
