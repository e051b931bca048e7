"""Neighborhood attention (NAT, DiNAT): reference, fused Triton kernel, ONNX node + function, TensorRT plugin.

    from tdeploy.plugins.neighborhood_attention import neighborhood_attention
    out = neighborhood_attention(qkv, rpb, num_heads=heads, kernel_size=7, dilation=2)   # (B, H, W, C)

See README.md in this folder for the math (NATTEN 0.17 semantics with rpb), layouts and limits.
"""

from pathlib import Path

import torch

from tdeploy.plugins.neighborhood_attention.cpp import kernel_records
from tdeploy.plugins.neighborhood_attention.onnx import (
    NeighborhoodAttention2D,
    neighborhood_attention_translation,
)
from tdeploy.plugins.neighborhood_attention.op import flop_count, neighborhood_attention
from tdeploy.plugins.neighborhood_attention.reference import neighborhood_attention_reference
from tdeploy.plugins.registry import PluginOp, register_plugin_op


def register_trt() -> None:
    """Register the ``tdeploy::NeighborhoodAttention2D`` TensorRT plugin (imports tensorrt lazily)."""
    from tdeploy.plugins.neighborhood_attention.trt import register

    register()


PLUGIN_OP = register_plugin_op(PluginOp(
    name="NeighborhoodAttention2D",
    torch_op=torch.ops.tdeploy.neighborhood_attention.default,
    onnx_translation=neighborhood_attention_translation,
    onnx_function=NeighborhoodAttention2D,
    register_trt=register_trt,
    kernel_records=kernel_records,
    flops=flop_count,
    inputs=("qkv", "rpb"),
    package_dir=Path(__file__).parent,
))

__all__ = ["PLUGIN_OP", "neighborhood_attention", "neighborhood_attention_reference", "register_trt"]
