"""TensorRT plugin ``tdeploy::NeighborhoodAttention2D``: a Quick Deployable Plugin with an AOT implementation.

The engine embeds the PTX of the same Triton kernel that runs in PyTorch (triton.py); at run time it
needs neither Python nor a plugin library. ``tensorrt`` is imported only inside :func:`register`.

Launch contract (what TensorRT's AOT launch passes, in this order; see NVIDIA's QDP sample
``samples/python/quickly_deployable_plugins``, whose kernels declare their extra scalars between the
input and output tensors "for kernel signature to be compatible with AOT plugin impl"):

    input pointers  (qkv, rpb)  ->  extra int32 scalars (H, W)  ->  output pointers (out)

which is exactly ``na2d_fwd_kernel(QKV, RPB, H, W, OUT, <constexprs>)``. Extra scalars can only be
int32 symbolic expressions, so the float ``scale`` (and the other attributes) are compile-time
constants of the PTX. :func:`ptx_entry_params` reads the ``.entry`` parameter list back so tests can
check that the PTX declares exactly these five parameters. Triton (3.5 included) appends two hidden
scratch pointers to every entry; TensorRT would not pass them, so :func:`strip_hidden_params` removes
them from the ``.entry`` line when the kernel uses no scratch memory and never reads them, and
:func:`compile_ptx` refuses the PTX otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tdeploy.errors import BackendUnavailable, TdeployError
from tdeploy.plugins.registry import PLUGIN_NAMESPACE

PLUGIN_ID = f"{PLUGIN_NAMESPACE}::NeighborhoodAttention2D"
# .param types of the entry, in order: qkv, rpb, H, W, out
EXPECTED_PARAMS = ("u64", "u64", "u32", "u32", "u64")
_TRITON_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


@dataclass(frozen=True)
class CompiledPTX:
    name: str  # kernel (entry) name
    ptx: str
    num_warps: int
    shared: int  # dynamic shared memory, bytes
    cfg: dict  # tile sizes (kernel_config)


def compile_ptx(
    *,
    dtype: str,
    num_heads: int,
    head_dim: int,
    kernel_size: int,
    dilation: int,
    scale: float,
    arch: int = 90,
) -> CompiledPTX:
    """Triton -> PTX for one attribute set and dtype ("float32"/"float16"/"bfloat16"); needs no GPU."""
    spec = dict(
        dtype=dtype,
        num_heads=num_heads,
        head_dim=head_dim,
        kernel_size=kernel_size,
        dilation=dilation,
        scale=float(scale),
        arch=arch,
    )
    return compile_ptx_many([spec])[0]


def compile_ptx_many(specs: list[dict]) -> list[CompiledPTX]:
    """:func:`compile_ptx` for several specs (keyword dicts).

    Under ``TRITON_INTERPRET=1`` (CPU tests) Triton's language helpers were created as interpreted
    functions at import, and real compilation fails; the specs are then compiled in one child Python
    process with the interpreter off.
    """
    try:
        import triton
    except ImportError as exc:
        raise BackendUnavailable(f"TensorRT AOT plugin needs triton to build PTX ({exc})") from exc
    if not triton.knobs.runtime.interpret:
        return [_compile_here(**spec) for spec in specs]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = str(Path(__file__).resolve().parents[3])  # the folder holding the tdeploy package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "tdeploy.plugins.neighborhood_attention.trt"],
        input=json.dumps(specs),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BackendUnavailable(f"compiling the NeighborhoodAttention2D kernel to PTX failed: {last}")
    return [CompiledPTX(**r) for r in json.loads(proc.stdout)]


def _compile_here(
    *, dtype: str, num_heads: int, head_dim: int, kernel_size: int, dilation: int, scale: float, arch: int
) -> CompiledPTX:
    import triton
    from triton.backends.compiler import GPUTarget

    from tdeploy.plugins.neighborhood_attention.triton import kernel_config, na2d_fwd_kernel

    if dtype not in _TRITON_DTYPES:
        raise TdeployError(
            f"NeighborhoodAttention2D plugin: dtype {dtype!r} not supported; use {list(_TRITON_DTYPES)}"
        )
    t = _TRITON_DTYPES[dtype]
    cfg = kernel_config(kernel_size, dilation, head_dim)
    constexprs = {
        "NUM_HEADS": num_heads,
        "HEAD_DIM": head_dim,
        "KERNEL_SIZE": kernel_size,
        "DILATION": dilation,
        "SCALE": float(scale),
        "HAS_RPB": True,  # the ONNX node always carries an rpb (zeros when the model has none)
        "DOT_FP32": dtype == "float32",
        "BLOCK_R": cfg["BLOCK_R"],
        "BLOCK_Q": cfg["BLOCK_Q"],
        "BLOCK_KV": cfg["BLOCK_KV"],
        "BLOCK_D": cfg["BLOCK_D"],
    }
    signature = {"QKV": f"*{t}", "RPB": f"*{t}", "H": "i32", "W": "i32", "OUT": f"*{t}"}
    signature.update({name: "constexpr" for name in constexprs})
    src = triton.compiler.ASTSource(fn=na2d_fwd_kernel, signature=signature, constexprs=constexprs)
    compiled = triton.compile(
        src, target=GPUTarget("cuda", arch, 32), options={"num_warps": cfg["num_warps"]}
    )
    meta = compiled.metadata
    if getattr(meta, "global_scratch_size", 0) or getattr(meta, "profile_scratch_size", 0):
        raise BackendUnavailable(
            f"triton {triton.__version__} compiled the kernel with global/profile scratch memory, "
            "which TensorRT's AOT launch does not provide; build the plugin with triton==3.5.1"
        )
    ptx = strip_hidden_params(compiled.asm["ptx"], meta.name, len(EXPECTED_PARAMS))
    params = ptx_entry_params(ptx, meta.name)
    if tuple(params) != EXPECTED_PARAMS:
        raise BackendUnavailable(
            f"triton {triton.__version__} emitted PTX parameters {params}, but TensorRT's AOT launch passes "
            f"{list(EXPECTED_PARAMS)} (qkv, rpb, H, W, out); build the plugin with triton==3.5.1"
        )
    return CompiledPTX(name=meta.name, ptx=ptx, num_warps=meta.num_warps, shared=meta.shared, cfg=cfg)


def strip_hidden_params(ptx: str, name: str, keep: int) -> str:
    """Drop the trailing ``.param``s that Triton appends after the kernel's own arguments.

    Triton 3.5 declares two hidden pointers (global and profile scratch) after the declared
    arguments. TensorRT passes only the declared ones, so when the body never reads a hidden
    parameter (no scratch memory: checked by the caller, and here by name) it is removed from the
    ``.entry`` line; a parameter that is read makes this raise instead.
    """
    match = re.search(r"(\.entry\s+" + re.escape(name) + r"\s*\()(.*?)(\))", ptx, re.S)
    if match is None:
        raise TdeployError(f"no .entry {name} in the PTX")
    params = [p.strip() for p in match.group(2).split(",") if p.strip()]
    if len(params) <= keep:
        return ptx
    body = ptx[match.end() :]
    for dropped in params[keep:]:
        pname = dropped.split()[-1]
        if re.search(re.escape(pname) + r"\b", body):
            raise BackendUnavailable(
                f"the PTX reads hidden parameter {pname}, which TensorRT's AOT launch does not pass; "
                "build the plugin with triton==3.5.1"
            )
    header = match.group(1) + "\n\t" + ",\n\t".join(params[:keep]) + "\n" + match.group(3)
    return ptx[: match.start()] + header + body


def ptx_entry_params(ptx: str, name: str) -> list[str]:
    """The ``.param`` types of ``.entry name(...)`` in order, e.g. ['u64', 'u64', 'u32', 'u32', 'u64']."""
    match = re.search(r"\.entry\s+" + re.escape(name) + r"\s*\((.*?)\)", ptx, re.S)
    if match is None:
        raise TdeployError(f"no .entry {name} in the PTX")
    return re.findall(r"\.param\s+\.(\w+)", match.group(1))


def register() -> None:
    """Register the plugin with TensorRT (10.9+ / 11.x). Idempotent."""
    global _registered
    if _registered:
        return
    try:
        import tensorrt as trt
        import tensorrt.plugin as trtp
    except ImportError as exc:
        raise BackendUnavailable(
            f"TensorRT is not installed ({exc}); install it on a machine with an NVIDIA GPU"
        ) from exc

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
        major, minor = _device_capability()
        kernel = compile_ptx(
            dtype=dtype,
            num_heads=num_heads,
            head_dim=head_dim,
            kernel_size=kernel_size,
            dilation=dilation,
            scale=scale,
            arch=10 * major + minor,
        )
        cfg = kernel.cfg
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


def _device_capability() -> tuple[int, int]:
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("building the NeighborhoodAttention2D plugin needs a CUDA GPU")
    return torch.cuda.get_device_capability()


if __name__ == "__main__":  # child process of compile_ptx_many: JSON specs on stdin, JSON kernels on stdout
    _specs = json.loads(sys.stdin.read())
    print(json.dumps([dataclasses.asdict(_compile_here(**spec)) for spec in _specs]))
