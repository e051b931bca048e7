"""The C++ plugin form of ``tdeploy::WindowAttention`` (``cpp/plugins/window_attention.cpp``): its kernels.

The library launches the same Triton kernel as PyTorch (triton.py) and the QDP plugin (trt.py), compiled
here for one node's configuration and carried in the node's ``kernels`` attribute
(:mod:`tdeploy.plugins.cpp_kernels`). The launcher's own tiling is kept even past 48 KiB of shared
memory: the library opts in to more (cuFuncSetAttribute) where the GPU has it. Launch, as the QDP one:
grid (B*nW, heads, ceil(N / block_m)), ``threads`` per block, args (qkv, bias, mask, n_win, out).
"""

from __future__ import annotations

from tdeploy.errors import TdeployError
from tdeploy.plugins.cpp_kernels import DTYPE_NAMES, KernelRecord, ptx_isa_for_arch, record
from tdeploy.plugins.window_attention.trt import compile_kernels, kernel_config

OP_TYPE = "WindowAttention"


def kernel_records(attributes: dict, shapes: dict[str, tuple], dtypes: list[str], archs: list[int]) -> list[KernelRecord]:
    """Kernels for one node: ``attributes`` (num_heads, scale), ``shapes`` of its inputs qkv and mask
    (static N, 3C and mask dim 1 needed), for each dtype ("float32", "float16") and architecture (e.g. 89)."""
    qkv, mask = shapes.get("qkv"), shapes.get("mask")
    if qkv is None or len(qkv) != 3 or not all(isinstance(d, int) for d in qkv[1:]):
        raise TdeployError(f"{OP_TYPE}: the kernel needs static N and 3C of qkv, the graph says {qkv}")
    if mask is None or len(mask) != 3 or not isinstance(mask[1], int):
        raise TdeployError(f"{OP_TYPE}: the kernel needs the mask's static dim 1, the graph says {mask}")
    heads, scale = int(attributes["num_heads"]), float(attributes["scale"])
    n, c = qkv[1], qkv[2] // 3
    has_mask = mask[1] != 1  # the (1, 1, 1) sentinel: no mask
    wanted = [(DTYPE_NAMES[d], arch) for d in dtypes for arch in archs]
    configs = [kernel_config(t, n, heads, c // heads, scale, has_mask, arch, ptx_isa_for_arch(arch))
               for t, arch in wanted]
    return [record(OP_TYPE, t, kernel, block_m=config["blocks"]["BLOCK_M"], n=n, c=c, heads=heads,
                   has_mask=int(has_mask))
            for (t, _), config, kernel in zip(wanted, configs, compile_kernels(configs))]
