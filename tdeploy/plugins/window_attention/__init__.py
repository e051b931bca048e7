"""Window attention (Swin, SwinIR): reference, fused Triton kernel, ONNX node + function, TensorRT plugin.

    from tdeploy.plugins.window_attention import window_attention
    out = window_attention(qkv, bias, mask, num_heads=heads)   # (B*nW, N, C)

See README.md in this folder for shapes, attributes, the mask convention and limits.
"""

from pathlib import Path

import torch

from tdeploy.plugins.registry import PluginOp, register_plugin_op
from tdeploy.plugins.window_attention.cpp import kernel_records
from tdeploy.plugins.window_attention.onnx import WindowAttention, window_attention_translation
from tdeploy.plugins.window_attention.op import flop_count, window_attention
from tdeploy.plugins.window_attention.reference import window_attention_reference


def register_trt() -> None:
    """Register the ``tdeploy::WindowAttention`` TensorRT plugin (imports tensorrt lazily)."""
    from tdeploy.plugins.window_attention.trt import register

    register()


PLUGIN_OP = register_plugin_op(PluginOp(
    name="WindowAttention",
    torch_op=torch.ops.tdeploy.window_attention.default,
    onnx_translation=window_attention_translation,
    onnx_function=WindowAttention,
    register_trt=register_trt,
    kernel_records=kernel_records,
    flops=flop_count,
    inputs=("qkv", "bias", "mask"),
    package_dir=Path(__file__).parent,
))

__all__ = ["PLUGIN_OP", "register_trt", "window_attention", "window_attention_reference"]
