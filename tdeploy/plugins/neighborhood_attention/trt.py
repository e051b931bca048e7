"""TensorRT plugin ``tdeploy::NeighborhoodAttention2D``: a Quick Deployable Plugin with an AOT implementation.

The engine embeds the PTX of the same Triton kernel that runs in PyTorch (triton.py); at run time it
needs neither Python nor a plugin library. ``tensorrt`` is imported only inside :func:`register`.

Launch contract (what TensorRT's AOT launch passes, in this order; see NVIDIA's QDP sample
``samples/python/quickly_deployable_plugins``, whose kernels declare their extra scalars between the
input and output tensors "for kernel signature to be compatible with AOT plugin impl"):

    input pointers  (qkv, rpb)  ->  extra int32 scalars (H, W)  ->  output pointers (out)

which is exactly ``na2d_fwd_kernel(QKV, RPB, H, W, OUT, <constexprs>)``. Extra scalars can only be
int32 symbolic expressions, so the float ``scale`` (and the other attributes) are compile-time
constants of the PTX. The PTX is built by :mod:`tdeploy.plugins.triton_aot`, which strips Triton's
hidden scratch parameters from the ``.entry`` (refusing kernels that use scratch memory) and checks
that the entry declares exactly these five parameters.
"""

from __future__ import annotations

from tdeploy.errors import TdeployError
from tdeploy.plugins.registry import PLUGIN_NAMESPACE
from tdeploy.plugins.triton_aot import require_triton

PLUGIN_ID = f"{PLUGIN_NAMESPACE}::NeighborhoodAttention2D"
# .entry parameters of the PTX, in order (as tdeploy.plugins.triton_aot.entry_params reads them): qkv, rpb, H, W, out
EXPECTED_PARAMS = ("ptr", "ptr", "u32", "u32", "ptr")
_TRITON_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def kernel_config(
    *,
    dtype: str,
    num_heads: int,
    head_dim: int,
    kernel_size: int,
    dilation: int,
    scale: float,
    arch: int = 90,
) -> dict:
    """Arguments of :func:`tdeploy.plugins.triton_aot.compile_ptx` for one attribute set and dtype
    ("float32"/"float16"/"bfloat16"), plus its tile sizes under ``"blocks"``."""
    require_triton("the NeighborhoodAttention2D TensorRT plugin")
    from tdeploy.plugins.neighborhood_attention.triton import kernel_config as tile_config

    if dtype not in _TRITON_DTYPES:
        raise TdeployError(
            f"NeighborhoodAttention2D plugin: dtype {dtype!r} not supported; use {list(_TRITON_DTYPES)}"
        )
    t = _TRITON_DTYPES[dtype]
    blocks = tile_config(kernel_size, dilation, head_dim)
    constexprs = {
        "NUM_HEADS": num_heads,
        "HEAD_DIM": head_dim,
        "KERNEL_SIZE": kernel_size,
        "DILATION": dilation,
        "SCALE": float(scale),
        "HAS_RPB": True,  # the ONNX node always carries an rpb (zeros when the model has none)
        "DOT_FP32": dtype == "float32",
        "BLOCK_R": blocks["BLOCK_R"],
        "BLOCK_Q": blocks["BLOCK_Q"],
        "BLOCK_KV": blocks["BLOCK_KV"],
        "BLOCK_D": blocks["BLOCK_D"],
    }
    signature = {"QKV": f"*{t}", "RPB": f"*{t}", "H": "i32", "W": "i32", "OUT": f"*{t}"}
    return {
        "signature": {**signature, **{name: "constexpr" for name in constexprs}},
        "constexprs": constexprs,
        "cc": arch,
        "num_warps": blocks["num_warps"],
        "num_stages": 3,  # Triton's CUDA default, what this plugin has always been compiled with
        "blocks": blocks,
    }


def compile_kernels(configs: list[dict]):
    """PTX kernels (:class:`tdeploy.plugins.triton_aot.PtxKernel`) for several :func:`kernel_config` results."""
    from tdeploy.plugins.neighborhood_attention.triton import na2d_fwd_kernel
    from tdeploy.plugins.triton_aot import compile_ptx_many

    return compile_ptx_many(na2d_fwd_kernel, [{k: v for k, v in c.items() if k != "blocks"} for c in configs])


def compile_kernel(**spec):
    """(PtxKernel, tile sizes) for one attribute set (the keyword arguments of :func:`kernel_config`); no GPU needed."""
    config = kernel_config(**spec)
    return compile_kernels([config])[0], config["blocks"]


def register() -> None:
    """Register the plugin with TensorRT (10.9+ / 11.x). Idempotent."""
    global _registered
    if _registered:
        return
    from tdeploy.plugins.qdp import device_cc, import_plugin_api

    trt, trtp = import_plugin_api(PLUGIN_ID)

    # Attribute types follow the ONNX parser's mapping: INT -> int32, FLOAT -> float32, STRING -> str.
    @trtp.register(PLUGIN_ID)
    def _desc(
        qkv: trtp.TensorDesc,
        rpb: trtp.TensorDesc,
        num_heads: int,
        kernel_size: int,
        dilation: int,
        scale: float,
    ) -> trtp.TensorDesc:
        out = qkv.like()  # (B, H, W, 3C) -> (B, H, W, C)
        out.shape_expr[3] = qkv.shape_expr[3] // 3
        return out

    @trtp.autotune(PLUGIN_ID)
    def _autotune(qkv, rpb, outputs):
        # qkv, rpb and out share one dtype; linear (row-major) layout only
        return [trtp.AutoTuneCombination("FP32|FP16|BF16, FP32|FP16|BF16, FP32|FP16|BF16", "LINEAR")]

    @trtp.aot_impl(PLUGIN_ID)
    def _aot_impl(
        qkv: trtp.TensorDesc,
        rpb: trtp.TensorDesc,
        num_heads: int,
        kernel_size: int,
        dilation: int,
        scale: float,
        outputs,
        tactic: int,
    ):
        dtype = {trt.float32: "float32", trt.float16: "float16", trt.bfloat16: "bfloat16"}[qkv.dtype]
        shape = qkv.shape_expr  # (B, H, W, 3C); B, H, W may be dynamic
        head_dim = int(qkv.shape_expr[3].constant_value()) // (3 * num_heads)
        kernel, cfg = compile_kernel(
            dtype=dtype,
            num_heads=num_heads,
            head_dim=head_dim,
            kernel_size=kernel_size,
            dilation=dilation,
            scale=scale,
            arch=device_cc(PLUGIN_ID),
        )
        launch = trtp.KernelLaunchParams()
        # grid: (column blocks x dilation groups, row blocks x groups, B * heads); see triton.grid()
        launch.grid_x = dilation * trtp.cdiv(trtp.cdiv(shape[2], dilation), cfg["BLOCK_Q"])
        launch.grid_y = dilation * trtp.cdiv(trtp.cdiv(shape[1], dilation), cfg["BLOCK_R"])
        launch.grid_z = shape[0] * num_heads
        launch.block_x = kernel.num_warps * 32
        launch.shared_mem = kernel.shared
        extra_args = trtp.SymIntExprs.from_tuple([trtp.SymInt32(shape[1]), trtp.SymInt32(shape[2])])  # H, W
        return kernel.name, kernel.ptx, launch, extra_args

    _registered = True


_registered = False
