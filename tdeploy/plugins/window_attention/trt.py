"""TensorRT plugin ``tdeploy::WindowAttention`` (tensorrt.plugin QDP, AOT: Triton kernel -> PTX).

An engine built with it embeds the PTX: no Python and no plugin library at run time. TensorRT is
imported inside :func:`register` only; nothing here runs at import time of the package.

TensorRT's ONNX parser sends the ``tdeploy::WindowAttention`` node (it carries
``plugin_namespace="tdeploy"``, ``plugin_version="1"``) to this plugin, with its three inputs
(qkv, bias, mask: see README.md for the (1, 1, 1) no-mask sentinel) and the ``num_heads`` and
``scale`` attributes. The AOT launch passes, in order: the input pointers (qkv, bias, mask), the
extra int32 args (n_win), the output pointer (out) -- exactly the kernel's runtime parameters.
"""

from __future__ import annotations

from tdeploy.errors import TdeployError

PLUGIN_ID = "tdeploy::WindowAttention"
_registered = False





def _constant(expr, what: str) -> int:
    if expr.is_fake or not expr.is_constant:
        raise TdeployError(
            f"{PLUGIN_ID}: {what} must be a build-time constant (only the window count B*nW may be dynamic)"
        )
    return int(expr.constant_value())


def kernel_signature(dtype: str) -> dict[str, str]:
    """Runtime parameters of window_attention_kernel for TensorRT: inputs, int32 extras, outputs."""
    ptr = f"*{dtype}"
    return {"QKV": ptr, "BIAS": ptr, "MASK": ptr, "n_win": "i32", "OUT": ptr}


def kernel_config(dtype: str, n: int, num_heads: int, head_dim: int, scale: float, has_mask: bool, cc: int,
                  ptx_version: int | None = None) -> dict:
    """Arguments of :func:`tdeploy.plugins.triton_aot.compile_ptx` for one configuration, plus its blocks."""
    import torch

    from tdeploy.plugins.window_attention.triton import block_config, dot_fp32

    blocks = block_config(n, head_dim)
    constexprs = {
        "SCALE": float(scale),
        "N": n,
        "HEADS": num_heads,
        "HEAD_DIM": head_dim,
        "HAS_MASK": has_mask,
        "BLOCK_M": blocks["BLOCK_M"],
        "BLOCK_N": blocks["BLOCK_N"],
        "BLOCK_D": blocks["BLOCK_D"],
        "DOT_FP32": dot_fp32({"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]),
    }
    return {
        "signature": {**kernel_signature(dtype), **{k: "constexpr" for k in constexprs}},
        "constexprs": constexprs,
        "cc": cc,
        "num_warps": blocks["num_warps"],
        "num_stages": blocks["num_stages"],
        "ptx_version": ptx_version,
        "blocks": blocks,
    }


def compile_kernels(configs: list[dict]):
    """PTX kernels for several :func:`kernel_config` results (one Triton process)."""
    from tdeploy.plugins.triton_aot import compile_ptx_many
    from tdeploy.plugins.window_attention.triton import window_attention_kernel

    return compile_ptx_many(window_attention_kernel, [{k: v for k, v in c.items() if k != "blocks"} for c in configs])


def compile_kernel(dtype: str, n: int, num_heads: int, head_dim: int, scale: float, has_mask: bool, cc: int,
                   ptx_version: int | None = None):
    """(PtxKernel, block sizes) of the fused kernel for one configuration; no GPU needed."""
    config = kernel_config(dtype, n, num_heads, head_dim, scale, has_mask, cc, ptx_version)
    return compile_kernels([config])[0], config["blocks"]


def register() -> None:
    """Register descriptor, autotune and AOT implementation of ``tdeploy::WindowAttention`` (once)."""
    global _registered
    if _registered:
        return
    from tdeploy.plugins.qdp import device_cc, import_plugin_api

    trt, trtp = import_plugin_api(PLUGIN_ID)

    @trtp.register(PLUGIN_ID)
    def _desc(
        qkv: trtp.TensorDesc, bias: trtp.TensorDesc, mask: trtp.TensorDesc, num_heads: int, scale: float
    ) -> trtp.TensorDesc:
        # (B*nW, N, 3C) -> (B*nW, N, C); a new ShapeExprs (like() would share qkv's).
        s = qkv.shape_expr
        return trtp.from_shape_expr((s[0], s[1], s[2] // 3), dtype=qkv.dtype)

    @trtp.autotune(PLUGIN_ID)
    def _autotune(qkv, bias, mask, outputs):
        # qkv, bias, mask and out share one dtype: all fp32 or all fp16, linear layout.
        return [trtp.AutoTuneCombination("FP32|FP16, FP32|FP16, FP32|FP16, FP32|FP16", "LINEAR")]

    @trtp.aot_impl(PLUGIN_ID)
    def _aot(qkv: trtp.TensorDesc, bias: trtp.TensorDesc, mask: trtp.TensorDesc, num_heads: int,
             scale: float, outputs, tactic: int):
        n = _constant(qkv.shape_expr[1], "N (qkv dim 1)")
        c = _constant(qkv.shape_expr[2], "3*C (qkv dim 2)") // 3
        head_dim = c // num_heads
        # The (1, 1, 1) sentinel means "no mask": compile without mask loads (pointer and n_win unused).
        # (With N = 1 the softmax is over one key: any mask is a no-op, so the test is exact.)
        has_mask = _constant(mask.shape_expr[1], "mask dim 1") != 1
        dtype = {trt.float32: "fp32", trt.float16: "fp16"}[qkv.dtype]
        kernel, cfg = compile_kernel(dtype, n, num_heads, head_dim, scale, has_mask, device_cc(PLUGIN_ID))

        launch = trtp.KernelLaunchParams()
        launch.grid_x = qkv.shape_expr[0]  # B*nW windows: the dynamic dim
        launch.grid_y = num_heads
        launch.grid_z = -(-n // cfg["BLOCK_M"])
        launch.block_x = kernel.num_warps * 32
        launch.shared_mem = kernel.shared
        # Extra int32 args, passed between the input and output pointers: n_win.
        extra = trtp.SymIntExprs(1)
        extra[0] = trtp.SymInt32(mask.shape_expr[0])
        return kernel.name.encode(), kernel.ptx.encode(), launch, extra

    _registered = True
