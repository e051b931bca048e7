"""Export form: one ``tdeploy::WindowAttention`` node plus a model-local ONNX function with the same math.

The node carries ``num_heads`` (int), ``scale`` (float), ``plugin_namespace="tdeploy"`` and
``plugin_version="1"``. The model-local function of the same domain and name holds the reference
math in standard opset-18 ops, so ONNX Runtime (which inlines model-local functions) runs the
exported file as it is, and TensorRT's parser hands the node to the registered plugin first.
``onnx.inliner.inline_local_functions(model)`` turns the file into plain standard ops
(the ``--no-plugins`` export).

Mask convention: the node ALWAYS has three inputs. A call without a mask passes a (1, 1, 1) zero
tensor of qkv's dtype (the "no-mask sentinel"): the function body adds it by broadcasting (a no-op),
and the TensorRT plugin reads its shape at build time and compiles the kernel without mask loads.
"""

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import defs
from onnxscript import FLOAT, script
from onnxscript import opset18 as op
from onnxscript.values import Op, Opset

from tdeploy.plugins.registry import DOMAIN, PLUGIN_NAMESPACE, PLUGIN_VERSION

OP_TYPE = "WindowAttention"
tdeploy_opset = Opset(DOMAIN, 1)


@script(tdeploy_opset, default_opset=op)
def WindowAttention(
    qkv,  # (B*nW, N, 3*C)
    bias,  # (heads, N, N)
    mask,  # (nW, N, N), or the (1, 1, 1) zero sentinel
    num_heads: int,
    scale: float,
    plugin_namespace: str = "tdeploy",  # read by TensorRT's parser, unused by the math
    plugin_version: str = "1",
):
    # The reference math of reference.py, in fp32 whatever the input dtype.
    minus_one = op.Constant(value_ints=[-1])
    heads = op.Reshape(op.Constant(value_int=num_heads), minus_one)  # (1,) int64
    shape = op.Shape(qkv)
    windows = op.Slice(shape, [0], [1])
    n = op.Slice(shape, [1], [2])
    three = op.Constant(value_ints=[3])
    # (B*nW, N, 3, heads, D) -> (3, B*nW, heads, N, D)
    qkv5 = op.Reshape(op.Cast(qkv, to=FLOAT.dtype), op.Concat(windows, n, three, heads, minus_one, axis=0))
    qkv5 = op.Transpose(qkv5, perm=[2, 0, 3, 1, 4])
    q, k, v = op.Split(qkv5, num_outputs=3, axis=0)
    zero_axis = op.Constant(value_ints=[0])
    q = op.Squeeze(q, zero_axis)
    k = op.Squeeze(k, zero_axis)
    v = op.Squeeze(v, zero_axis)
    scale_t = op.Constant(value_float=scale)
    attn = op.MatMul(op.Mul(q, scale_t), op.Transpose(k, perm=[0, 1, 3, 2]))  # (B*nW, heads, N, N)
    attn = op.Add(attn, op.Unsqueeze(op.Cast(bias, to=FLOAT.dtype), zero_axis))
    # Window b uses mask[b % nW]: view as (B, nW, heads, N, N) and broadcast the mask over B and heads.
    n_win = op.Slice(op.Shape(mask), [0], [1])
    attn5 = op.Reshape(attn, op.Concat(minus_one, n_win, heads, n, n, axis=0))
    mask5 = op.Unsqueeze(op.Cast(mask, to=FLOAT.dtype), op.Constant(value_ints=[0, 2]))
    attn = op.Reshape(op.Add(attn5, mask5), op.Concat(minus_one, heads, n, n, axis=0))
    attn = op.Softmax(attn, axis=-1)
    out = op.Transpose(op.MatMul(attn, v), perm=[0, 2, 1, 3])  # (B*nW, N, heads, D)
    out = op.Reshape(out, op.Concat(windows, n, minus_one, axis=0))
    return op.CastLike(out, qkv)


# The bare custom node, no body attached. The exporter inlines every model-local function while it
# converts opsets (torch 2.13 + onnxscript 0.7 run InlinePass whenever opset_version is given), so the
# translation emits only the node; tdeploy.plugins.onnx_functions.finalize_plugin_nodes attaches the
# function above afterwards.
# The tracing evaluator binds inputs and attributes through an OpSchema, so give the node one.
_T = "T"
_SCHEMA = defs.OpSchema(
    OP_TYPE,
    DOMAIN,
    1,
    inputs=[
        defs.OpSchema.FormalParameter("qkv", _T, "(B*nW, N, 3*C)"),
        defs.OpSchema.FormalParameter("bias", _T, "(heads, N, N)"),
        defs.OpSchema.FormalParameter("mask", _T, "(nW, N, N), or (1, 1, 1) zeros for no mask"),
    ],
    outputs=[defs.OpSchema.FormalParameter("out", _T, "(B*nW, N, C)")],
    type_constraints=[(_T, ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"], "qkv's dtype")],
    attributes=[
        defs.OpSchema.Attribute("num_heads", defs.OpSchema.AttrType.INT, "heads"),
        defs.OpSchema.Attribute("scale", defs.OpSchema.AttrType.FLOAT, "multiplies q.k"),
        defs.OpSchema.Attribute("plugin_namespace", defs.OpSchema.AttrType.STRING, "TensorRT plugin namespace"),
        defs.OpSchema.Attribute("plugin_version", defs.OpSchema.AttrType.STRING, "TensorRT plugin version"),
    ],
)
_WindowAttentionNode = Op(tdeploy_opset, OP_TYPE, _SCHEMA)


def window_attention_translation(qkv, bias, mask=None, num_heads: int = 1, scale: float = 1.0, backend: str = ""):
    """torch.ops.tdeploy.window_attention -> one tdeploy::WindowAttention node (``backend`` is eager-only)."""
    if mask is None:
        # The no-mask sentinel: a (1, 1, 1) zero of qkv's dtype (folded to an initializer on export).
        mask = op.CastLike(op.Constant(value=onnx.numpy_helper.from_array(np.zeros((1, 1, 1), np.float32))), qkv)
    return _WindowAttentionNode(
        qkv,
        bias,
        mask,
        num_heads=num_heads,
        scale=scale,
        plugin_namespace=PLUGIN_NAMESPACE,
        plugin_version=PLUGIN_VERSION,
    )
