"""Neighborhood attention (NAT / DiNAT): functional entry point, torch custom op, plugin description.

``neighborhood_attention(qkv, rpb, num_heads=..., kernel_size=..., dilation=..., scale=..., backend=None)``
is what models call. With ``backend=None`` it goes through ONE torch custom op,
``torch.ops.tdeploy.neighborhood_attention``, which runs the Triton kernel on CUDA tensors and the
PyTorch reference otherwise, and which exports to ONNX as one ``tdeploy::NeighborhoodAttention2D``
node (see onnx.py). ``backend="reference"`` / ``"triton"`` call that backend directly (eager use,
tests, benchmarks). See README.md for the math, layouts and limits.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from tdeploy.errors import BackendUnavailable, TdeployError
from tdeploy.plugins.autograd import register_reference_autograd
from tdeploy.plugins.neighborhood_attention import onnx as _onnx
from tdeploy.plugins.neighborhood_attention.reference import neighborhood_attention_reference
from tdeploy.plugins.registry import PluginOp

BACKENDS = ("reference", "triton")
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MAX_KERNEL_SIZE_TRITON = 31  # tested 3..13; larger k only grows the key tile
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
            f"{name}: qkv dtype {qkv.dtype} is not supported; use float32, float16 or bfloat16"
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
        if rpb.device != qkv.device:
            raise TdeployError(
                f"{name}: rpb is on {rpb.device} but qkv on {qkv.device}; move both to one device"
            )
    return c3 // (3 * num_heads)


def _triton_unavailable(qkv: torch.Tensor, kernel_size: int, head_dim: int) -> str | None:
    """None when the Triton backend can run these arguments, else why not (one line)."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install 'tdeploy[triton]')"
    if kernel_size > MAX_KERNEL_SIZE_TRITON:
        return f"kernel_size {kernel_size} > {MAX_KERNEL_SIZE_TRITON} is not supported by the Triton kernel"
    if head_dim > MAX_HEAD_DIM_TRITON:
        return f"head_dim {head_dim} > {MAX_HEAD_DIM_TRITON} is not supported by the Triton kernel"
    if not qkv.is_cuda:
        from tdeploy.plugins.neighborhood_attention import triton as _tri

        if not _is_interpreted(_tri.na2d_fwd_kernel):
            return (
                "qkv is on the CPU and Triton's interpreter is off "
                "(move tensors to a CUDA GPU, or set TRITON_INTERPRET=1 before importing tdeploy)"
            )
    return None


def _is_interpreted(kernel) -> bool:
    return type(kernel).__name__ == "InterpretedFunction"


def _run(
    backend: str,
    qkv: torch.Tensor,
    rpb: torch.Tensor | None,
    num_heads: int,
    kernel_size: int,
    dilation: int,
    scale: float,
) -> torch.Tensor:
    if backend == "reference":
        return neighborhood_attention_reference(
            qkv, rpb, num_heads=num_heads, kernel_size=kernel_size, dilation=dilation, scale=scale
        )
    from tdeploy.plugins.neighborhood_attention.triton import neighborhood_attention_triton

    return neighborhood_attention_triton(
        qkv, rpb, num_heads=num_heads, kernel_size=kernel_size, dilation=dilation, scale=scale
    )


def _default_backend(qkv: torch.Tensor, kernel_size: int, head_dim: int) -> str:
    if qkv.is_cuda and _triton_unavailable(qkv, kernel_size, head_dim) is None:
        return "triton"
    return "reference"


# ---- the torch custom op: what torch.export records and torch.onnx translates
@torch.library.custom_op("tdeploy::neighborhood_attention", mutates_args=())
def _neighborhood_attention_op(
    qkv: torch.Tensor,
    rpb: torch.Tensor | None,
    num_heads: int,
    kernel_size: int,
    dilation: int,
    scale: float,
) -> torch.Tensor:
    head_dim = qkv.shape[-1] // (3 * num_heads)
    backend = _default_backend(qkv, kernel_size, head_dim)
    return _run(backend, qkv, rpb, num_heads, kernel_size, dilation, scale)


@_neighborhood_attention_op.register_fake
def _(qkv, rpb, num_heads, kernel_size, dilation, scale):
    B, H, W, C3 = qkv.shape  # (B, H, W, 3C) -> (B, H, W, C); H, W may be symbolic
    return qkv.new_empty((B, H, W, C3 // 3))


# Training through the op: gradients of the reference math (see plugins/autograd.py).
register_reference_autograd(
    _neighborhood_attention_op,
    lambda qkv, rpb, num_heads, kernel_size, dilation, scale: neighborhood_attention_reference(
        qkv, rpb, num_heads=num_heads, kernel_size=kernel_size, dilation=dilation, scale=scale
    ),
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
    """2-D neighborhood attention with NATTEN 0.17 semantics (forward only).

    qkv: (B, H, W, 3*C), the qkv Linear's output, i.e. (B, H, W, 3, num_heads, head_dim).
    rpb: (num_heads, 2k-1, 2k-1) relative position bias, or None.
    scale: logit scale, default head_dim ** -0.5.
    backend: None (Triton on CUDA tensors, else reference; exports as one ONNX node), "reference"
        or "triton" (Triton on CUDA, or interpreted on CPU under TRITON_INTERPRET=1).
    Returns (B, H, W, C) in qkv's dtype. Maps smaller than k*dilation are zero padded (README.md).
    """
    head_dim = _check_args(qkv, rpb, num_heads, kernel_size, dilation)
    scale = float(head_dim**-0.5 if scale is None else scale)
    if backend is None:
        return torch.ops.tdeploy.neighborhood_attention(qkv, rpb, num_heads, kernel_size, dilation, scale)
    if backend not in BACKENDS:
        raise TdeployError(
            f"neighborhood_attention: unknown backend {backend!r}; use None, 'reference' or 'triton'"
        )
    if backend == "triton":
        why = _triton_unavailable(qkv, kernel_size, head_dim)
        if why is not None:
            raise BackendUnavailable(f"neighborhood_attention: backend 'triton' cannot run: {why}")
    return _run(backend, qkv, rpb, num_heads, kernel_size, dilation, scale)


def _register_trt() -> None:
    from tdeploy.plugins.neighborhood_attention import trt  # imports tensorrt lazily, inside

    trt.register()


PLUGIN_OP = PluginOp(
    name=_onnx.OP_TYPE,
    torch_op=torch.ops.tdeploy.neighborhood_attention.default,
    onnx_translation=_onnx.translate,
    register_trt=_register_trt,
    package_dir=Path(__file__).parent,
    extra={
        # post-pass for exported models: adds the model-local function the node needs (see onnx.py)
        "add_onnx_function": _onnx.add_local_function,
        "onnx_function": _onnx.function_proto,
    },
)

__all__ = ["BACKENDS", "PLUGIN_OP", "neighborhood_attention", "neighborhood_attention_reference"]
