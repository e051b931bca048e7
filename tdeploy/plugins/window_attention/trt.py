"""TensorRT plugin ``tdeploy::WindowAttention`` (tensorrt.plugin QDP, AOT: Triton kernel -> PTX).

An engine built with it embeds the PTX: no Python and no plugin library at run time. TensorRT is
imported inside :func:`register` only; nothing here runs at import time of the package.

TensorRT's ONNX parser sends the ``tdeploy::WindowAttention`` node (it carries
``plugin_namespace="tdeploy"``, ``plugin_version="1"``) to this plugin, with its three inputs
(qkv, bias, mask: see README.md for the (1, 1, 1) no-mask sentinel) and the ``num_heads`` (kINT32)
and ``scale`` (kFLOAT32) attributes. The AOT launch passes, in order: the input pointers (qkv, bias,
mask), the extra int32 args (n_win), the output pointer (out) -- exactly the kernel's runtime parameters.

No ``from __future__ import annotations`` here: tensorrt.plugin validates the annotations themselves.
"""

from tdeploy.errors import TdeployError
from tdeploy.plugins.qdp import FLOAT32_ATTR, INT32_ATTR, fit_shared_memory, import_plugin_api, scalar, target
from tdeploy.plugins.triton_aot import compile_configs

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
                  ptx_version: int | None = None, blocks: dict | None = None) -> dict:
    """Arguments of :func:`tdeploy.plugins.triton_aot.compile_ptx` for one configuration, plus its blocks
    (``blocks``: a tiling other than the launcher's, see :func:`tilings`)."""
    import torch

    from tdeploy.plugins.window_attention.triton import block_config, dot_fp32

    blocks = blocks or block_config(n, head_dim)
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


def tilings(n: int, head_dim: int) -> list[dict]:
    """The launcher's tiling first, then ones that need less shared memory (one pipeline stage, then
    narrower key tiles): :func:`tdeploy.plugins.qdp.fit_shared_memory` takes the first that fits."""
    from tdeploy.plugins.window_attention.triton import block_config

    base = block_config(n, head_dim)
    out = [base, {**base, "num_stages": 1}]
    for block_n in (32, 16):
        if block_n < base["BLOCK_N"]:
            out.append({**base, "BLOCK_N": block_n, "num_stages": 1})
    return out


def compile_kernels(configs: list[dict]):
    """PTX kernels for several :func:`kernel_config` results (one Triton process)."""
    from tdeploy.plugins.window_attention.triton import window_attention_kernel

    return compile_configs(window_attention_kernel, configs)


def compile_kernel(dtype: str, n: int, num_heads: int, head_dim: int, scale: float, has_mask: bool, cc: int,
                   ptx_version: int | None = None):
    """(PtxKernel, block sizes) of the fused kernel for one configuration, within the AOT launch's shared
    memory limit; no GPU needed."""

    def compile_one(blocks):
        config = kernel_config(dtype, n, num_heads, head_dim, scale, has_mask, cc, ptx_version, blocks)
        return compile_kernels([config])[0]

    return fit_shared_memory(PLUGIN_ID, compile_one, tilings(n, head_dim))


def register() -> None:
    """Register descriptor, autotune and AOT implementation of ``tdeploy::WindowAttention`` (once)."""
    global _registered
    if _registered:
        return
    trt, trtp = import_plugin_api(PLUGIN_ID)

    @trtp.register(PLUGIN_ID)
    def _desc(
        qkv: trtp.TensorDesc, bias: trtp.TensorDesc, mask: trtp.TensorDesc, num_heads: INT32_ATTR, scale: FLOAT32_ATTR
    ) -> trtp.TensorDesc:
        # (B*nW, N, 3C) -> (B*nW, N, C); a new ShapeExprs (like() would share qkv's).
        s = qkv.shape_expr
        return trtp.from_shape_expr((s[0], s[1], s[2] // 3), dtype=qkv.dtype)

    @trtp.autotune(PLUGIN_ID)
    def _autotune(qkv: trtp.TensorDesc, bias: trtp.TensorDesc, mask: trtp.TensorDesc,
                  outputs: tuple[trtp.TensorDesc]) -> list[trtp.AutoTuneCombination]:
        # qkv, bias, mask and out share one dtype (fp32, fp16 or bf16), linear layout.
        return [trtp.AutoTuneCombination("FP32|FP16|BF16, FP32|FP16|BF16, FP32|FP16|BF16, FP32|FP16|BF16", "LINEAR")]

    @trtp.aot_impl(PLUGIN_ID)
    def _aot(
        qkv: trtp.TensorDesc, bias: trtp.TensorDesc, mask: trtp.TensorDesc, num_heads: INT32_ATTR,
        scale: FLOAT32_ATTR, outputs: tuple[trtp.TensorDesc], tactic: int,
    ) -> tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymExprs]:
        heads, logit_scale = scalar(num_heads, int), scalar(scale, float)
        n = _constant(qkv.shape_expr[1], "N (qkv dim 1)")
        c = _constant(qkv.shape_expr[2], "3*C (qkv dim 2)") // 3
        head_dim = c // heads
        # The (1, 1, 1) sentinel means "no mask": compile without mask loads (pointer and n_win unused).
        # (With N = 1 the softmax is over one key: any mask is a no-op, so the test is exact.)
        has_mask = _constant(mask.shape_expr[1], "mask dim 1") != 1
        dtype = {trt.float32: "fp32", trt.float16: "fp16", trt.bfloat16: "bf16"}[qkv.dtype]
        cc, ptx_version = target(PLUGIN_ID)
        kernel, cfg = compile_kernel(dtype, n, heads, head_dim, logit_scale, has_mask, cc, ptx_version)

        launch = trtp.KernelLaunchParams()
        launch.grid_x = qkv.shape_expr[0]  # B*nW windows: the dynamic dim
        launch.grid_y = heads
        launch.grid_z = -(-n // cfg["BLOCK_M"])
        launch.block_x = kernel.num_warps * 32
        launch.shared_mem = kernel.shared
        # Extra int32 args, passed between the input and output pointers: n_win.
        extra = trtp.SymIntExprs(1)
        extra[0] = trtp.SymInt32(mask.shape_expr[0])
        return kernel.name.encode(), kernel.ptx.encode(), launch, extra

    _registered = True
