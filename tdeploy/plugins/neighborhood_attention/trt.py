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

No ``from __future__ import annotations`` here: tensorrt.plugin validates the annotations themselves.
"""

from tdeploy.errors import TdeployError
from tdeploy.plugins.qdp import FLOAT32_ATTR, INT32_ATTR, fit_shared_memory, import_plugin_api, scalar, target
from tdeploy.plugins.registry import PLUGIN_NAMESPACE
from tdeploy.plugins.triton_aot import compile_configs, require_triton

PLUGIN_ID = f"{PLUGIN_NAMESPACE}::NeighborhoodAttention2D"
# .entry parameters of the PTX, in order (as tdeploy.plugins.triton_aot.entry_params reads them): qkv, rpb, H, W, out
EXPECTED_PARAMS = ("ptr", "ptr", "u32", "u32", "ptr")
_TRITON_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
NUM_STAGES = 3  # Triton's CUDA default: what the launcher in triton.py runs with
_registered = False


def kernel_config(
    *,
    dtype: str,
    num_heads: int,
    head_dim: int,
    kernel_size: int,
    dilation: int,
    scale: float,
    arch: int = 90,
    ptx_version: int | None = None,
    blocks: dict | None = None,
) -> dict:
    """Arguments of :func:`tdeploy.plugins.triton_aot.compile_ptx` for one attribute set and dtype
    ("float32"/"float16"/"bfloat16"), plus its tile sizes under ``"blocks"`` (``blocks``: a tiling other
    than the launcher's, see :func:`tilings`)."""
    require_triton("the NeighborhoodAttention2D TensorRT plugin")
    if dtype not in _TRITON_DTYPES:
        raise TdeployError(
            f"NeighborhoodAttention2D plugin: dtype {dtype!r} not supported; use {list(_TRITON_DTYPES)}"
        )
    t = _TRITON_DTYPES[dtype]
    blocks = blocks or tilings(kernel_size, dilation, head_dim)[0]
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
        "num_stages": blocks["num_stages"],
        "ptx_version": ptx_version,
        "blocks": blocks,
    }


def tilings(kernel_size: int, dilation: int, head_dim: int) -> list[dict]:
    """The launcher's tiling first, then ones that need less shared memory (fewer pipeline stages, then
    fewer query rows per program): :func:`tdeploy.plugins.qdp.fit_shared_memory` takes the first that fits."""
    require_triton("the NeighborhoodAttention2D TensorRT plugin")
    from tdeploy.plugins.neighborhood_attention.triton import kernel_config as tile_config

    base = {**tile_config(kernel_size, dilation, head_dim), "num_stages": NUM_STAGES}
    out = [base, {**base, "num_stages": 2}, {**base, "num_stages": 1}]
    block_r = base["BLOCK_R"] // 2
    while block_r >= 1:
        out.append({**base, "BLOCK_R": block_r, "num_stages": 1})
        block_r //= 2
    return out


def compile_kernels(configs: list[dict]):
    """PTX kernels (:class:`tdeploy.plugins.triton_aot.PtxKernel`) for several :func:`kernel_config` results."""
    from tdeploy.plugins.neighborhood_attention.triton import na2d_fwd_kernel

    return compile_configs(na2d_fwd_kernel, configs)


def compile_kernel(**spec):
    """(PtxKernel, tile sizes) for one attribute set (the keyword arguments of :func:`kernel_config`), within
    the AOT launch's shared memory limit; no GPU needed."""

    def compile_one(blocks):
        return compile_kernels([kernel_config(**spec, blocks=blocks)])[0]

    return fit_shared_memory(PLUGIN_ID, compile_one, tilings(spec["kernel_size"], spec["dilation"], spec["head_dim"]))


def register() -> None:
    """Register the plugin with TensorRT (10.9+ / 11.x). Idempotent."""
    global _registered
    if _registered:
        return
    trt, trtp = import_plugin_api(PLUGIN_ID)

    # Attributes arrive as the ONNX parser makes them: INT -> a kINT32 field, FLOAT -> kFLOAT32 (see qdp.py).
    @trtp.register(PLUGIN_ID)
    def _desc(
        qkv: trtp.TensorDesc,
        rpb: trtp.TensorDesc,
        num_heads: INT32_ATTR,
        kernel_size: INT32_ATTR,
        dilation: INT32_ATTR,
        scale: FLOAT32_ATTR,
    ) -> trtp.TensorDesc:
        out = qkv.like()  # (B, H, W, 3C) -> (B, H, W, C)
        out.shape_expr[3] = qkv.shape_expr[3] // 3
        return out

    @trtp.autotune(PLUGIN_ID)
    def _autotune(qkv: trtp.TensorDesc, rpb: trtp.TensorDesc,
                  outputs: tuple[trtp.TensorDesc]) -> list[trtp.AutoTuneCombination]:
        # qkv, rpb and out share one dtype; linear (row-major) layout only
        return [trtp.AutoTuneCombination("FP32|FP16|BF16, FP32|FP16|BF16, FP32|FP16|BF16", "LINEAR")]

    @trtp.aot_impl(PLUGIN_ID)
    def _aot_impl(
        qkv: trtp.TensorDesc,
        rpb: trtp.TensorDesc,
        num_heads: INT32_ATTR,
        kernel_size: INT32_ATTR,
        dilation: INT32_ATTR,
        scale: FLOAT32_ATTR,
        outputs: tuple[trtp.TensorDesc],
        tactic: int,
    ) -> tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymExprs]:
        heads, k, d = scalar(num_heads, int), scalar(kernel_size, int), scalar(dilation, int)
        dtype = {trt.float32: "float32", trt.float16: "float16", trt.bfloat16: "bfloat16"}[qkv.dtype]
        shape = qkv.shape_expr  # (B, H, W, 3C); B, H, W may be dynamic
        head_dim = int(shape[3].constant_value()) // (3 * heads)
        cc, ptx_version = target(PLUGIN_ID)
        kernel, cfg = compile_kernel(dtype=dtype, num_heads=heads, head_dim=head_dim, kernel_size=k, dilation=d,
                                     scale=scalar(scale, float), arch=cc, ptx_version=ptx_version)
        launch = trtp.KernelLaunchParams()
        # grid: (B * heads, column blocks x dilation groups, row blocks x groups), as triton.grid().
        # ShapeExpr has forward operators only: the expression goes first (expr * d, never d * expr).
        launch.grid_x = shape[0] * heads
        launch.grid_y = trtp.cdiv(trtp.cdiv(shape[2], d), cfg["BLOCK_Q"]) * d
        launch.grid_z = trtp.cdiv(trtp.cdiv(shape[1], d), cfg["BLOCK_R"]) * d
        launch.block_x = kernel.num_warps * 32
        launch.shared_mem = kernel.shared
        extra_args = trtp.SymIntExprs.from_tuple([trtp.SymInt32(shape[1]), trtp.SymInt32(shape[2])])  # H, W
        return kernel.name, kernel.ptx, launch, extra_args

    _registered = True
