"""The C++ plugin form of ``tdeploy::NeighborhoodAttention2D`` (``cpp/plugins/neighborhood_attention.cpp``): its kernels.

The library launches the same Triton kernel as PyTorch (triton.py) and the QDP plugin (trt.py), compiled
here for one node's configuration and carried in the node's ``kernels`` attribute
(:mod:`tdeploy.plugins.cpp_kernels`), with the launcher's own tiling (the library opts in to more than
48 KiB of shared memory where the GPU has it). Launch, as triton.grid(): grid (B*heads,
d*ceil(ceil(W/d)/block_q), d*ceil(ceil(H/d)/block_r)), ``threads`` per block, args (qkv, rpb, H, W, out).
"""

from __future__ import annotations

from tdeploy.errors import TdeployError
from tdeploy.plugins.cpp_kernels import DTYPE_NAMES, KernelRecord, ptx_isa_for_arch, record
from tdeploy.plugins.neighborhood_attention.trt import compile_kernels, kernel_config

OP_TYPE = "NeighborhoodAttention2D"


def kernel_records(attributes: dict, shapes: dict[str, tuple], dtypes: list[str], archs: list[int]) -> list[KernelRecord]:
    """Kernels for one node: ``attributes`` (num_heads, kernel_size, dilation, scale), ``shapes`` of its
    input qkv (static 3C needed), for each dtype ("float32", "float16") and architecture (e.g. 89)."""
    qkv = shapes.get("qkv")
    if qkv is None or len(qkv) != 4 or not isinstance(qkv[3], int):
        raise TdeployError(f"{OP_TYPE}: the kernel needs the static channel dim of qkv, the graph says {qkv}")
    heads, k, d = int(attributes["num_heads"]), int(attributes["kernel_size"]), int(attributes["dilation"])
    head_dim = qkv[3] // 3 // heads
    wanted = [(t, arch) for t in dtypes for arch in archs]
    configs = [kernel_config(dtype=t, num_heads=heads, head_dim=head_dim, kernel_size=k, dilation=d,
                             scale=float(attributes["scale"]), arch=arch, ptx_version=ptx_isa_for_arch(arch))
               for t, arch in wanted]
    return [record(OP_TYPE, DTYPE_NAMES[t], kernel, block_r=config["blocks"]["BLOCK_R"], block_q=config["blocks"]["BLOCK_Q"],
                   heads=heads, head_dim=head_dim, kernel_size=k, dilation=d)
            for (t, _), config, kernel in zip(wanted, configs, compile_kernels(configs))]
