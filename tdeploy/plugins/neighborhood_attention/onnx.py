"""ONNX form of the op: one ``tdeploy::NeighborhoodAttention2D`` node + a model-local function.

Export happens in two steps, because torch's exporter inlines (and so removes) every ONNX function
that a translation calls while it converts opsets:

1. :func:`translate` (registered in ``custom_translation_table``) emits ONE plain node, domain
   ``tdeploy``, op_type ``NeighborhoodAttention2D``, attributes ``num_heads``, ``kernel_size``,
   ``dilation``, ``scale``, ``plugin_namespace="tdeploy"``, ``plugin_version="1"``. Its inputs are
   ``qkv`` and ``rpb``; a call without rpb gets an all-zero rpb (adding zeros changes nothing and
   keeps one input signature for TensorRT).
2. :func:`add_local_function` (a post-pass on the exported ``onnx.ModelProto``) adds the function
   below once to ``model.functions``. Its body is the reference math in standard opset-18 ops; the
   neighbor indices come from ``Shape(qkv)`` at run time, so no spatial size is baked in.

ONNX Runtime inlines the function and runs the file as is; TensorRT's parser sends the node to the
registered plugin (``plugin_namespace``); ``onnx.inliner.inline_local_functions`` gives the
plugin-free (``--no-plugins``) form.
"""

from __future__ import annotations

import onnx
import onnx.parser
from onnx import defs
from onnxscript import opset18 as op
from onnxscript.values import Op, Opset

from tdeploy.plugins.registry import DOMAIN, PLUGIN_NAMESPACE, PLUGIN_VERSION

OP_TYPE = "NeighborhoodAttention2D"
ONNX_OPSET = 18  # opset of the function body

# The function body in ONNX's text format. Shapes in comments; k = kernel_size, d = dilation,
# nh = num_heads, hd = head_dim, Hp/Wp = padded sizes max(H, k*d)/max(W, k*d).
# Per axis (rows shown; columns are the same with W): g = i % d, p = i // d,
# Lg = (Hp - g + d - 1) // d, s = min(max(p - k//2, 0), Lg - k),
# neighbor a = (s + a) * d + g, bias index = (k - 1) + s - p + a   (see reference.py).
_FUNCTION_TEXT = f"""
<domain: "{DOMAIN}", opset_import: ["" : {ONNX_OPSET}]>
{OP_TYPE} <num_heads, kernel_size, dilation, scale> (qkv, rpb) => (out) {{
    nh = Constant <value_int: int = @num_heads> ()
    k = Constant <value_int: int = @kernel_size> ()
    d = Constant <value_int: int = @dilation> ()
    sc = Constant <value_float: float = @scale> ()
    c0 = Constant <value_int: int = 0> ()
    c1 = Constant <value_int: int = 1> ()
    c2 = Constant <value_int: int = 2> ()
    ax0 = Constant <value_ints: ints = [0]> ()
    ax1 = Constant <value_ints: ints = [1]> ()
    ax4 = Constant <value_ints: ints = [4]> ()

    # ---- runtime sizes and the zero padding of small maps (bottom/right, up to k*d)
    x = Cast <to = 1> (qkv)                               # (B, H, W, 3C) fp32
    shp = Shape (x)
    H = Gather (shp, c1)
    W = Gather (shp, c2)
    kd = Mul (k, d)
    Hp = Max (H, kd)
    Wp = Max (W, kd)
    dh = Sub (Hp, H)
    dw = Sub (Wp, W)
    pad_h = Unsqueeze (dh, ax0)
    pad_w = Unsqueeze (dw, ax0)
    zeros5 = Constant <value_ints: ints = [0, 0, 0, 0, 0]> ()
    pads = Concat <axis = 0> (zeros5, pad_h, pad_w, ax0)
    xp = Pad (x, pads)                                    # (B, Hp, Wp, 3C)

    # ---- split q, k, v: (B, Hp, Wp, 3, nh, hd) -> 3 x (B, nh, Hp, Wp, hd); q cropped to (B, nh, H, W, hd)
    head4 = Constant <value_ints: ints = [0, 0, 0, 3]> ()
    minus1 = Constant <value_ints: ints = [-1]> ()
    nh1 = Unsqueeze (nh, ax0)
    shape6 = Concat <axis = 0> (head4, nh1, minus1)
    x6 = Reshape (xp, shape6)
    xt = Transpose <perm = [3, 0, 4, 1, 2, 5]> (x6)
    q_all = Gather <axis = 0> (xt, c0)
    k_all = Gather <axis = 0> (xt, c1)
    v_all = Gather <axis = 0> (xt, c2)
    H1 = Unsqueeze (H, ax0)
    W1 = Unsqueeze (W, ax0)
    q_ends = Concat <axis = 0> (H1, W1)
    q_starts = Constant <value_ints: ints = [0, 0]> ()
    q_axes = Constant <value_ints: ints = [2, 3]> ()
    q = Slice (q_all, q_starts, q_ends, q_axes)

    # ---- neighbor and bias indices per axis, from the runtime sizes
    ns = Div (k, c2)
    ar_k = Range (c0, k, c1)                              # (k,)
    km1 = Sub (k, c1)
    i_h = Range (c0, H, c1)                               # (H,)
    g_h = Mod (i_h, d)
    p_h = Div (i_h, d)
    n_h = Add (Hp, d)
    g1_h = Add (g_h, c1)
    m_h = Sub (n_h, g1_h)
    lg_h = Div (m_h, d)                                   # pixels in the dilation group
    ps_h = Sub (p_h, ns)
    lo_h = Max (ps_h, c0)
    hi_h = Sub (lg_h, k)
    s_h = Min (lo_h, hi_h)                                # window start, group coordinates
    s2_h = Unsqueeze (s_h, ax1)
    g2_h = Unsqueeze (g_h, ax1)
    sa_h = Add (s2_h, ar_k)
    sad_h = Mul (sa_h, d)
    idx_h = Add (sad_h, g2_h)                             # (H, k) neighbor rows
    rel_h = Sub (s_h, p_h)
    rel2_h = Unsqueeze (rel_h, ax1)
    rela_h = Add (rel2_h, ar_k)
    bias_h = Add (rela_h, km1)                            # (H, k) rpb rows
    i_w = Range (c0, W, c1)                               # (W,)
    g_w = Mod (i_w, d)
    p_w = Div (i_w, d)
    n_w = Add (Wp, d)
    g1_w = Add (g_w, c1)
    m_w = Sub (n_w, g1_w)
    lg_w = Div (m_w, d)
    ps_w = Sub (p_w, ns)
    lo_w = Max (ps_w, c0)
    hi_w = Sub (lg_w, k)
    s_w = Min (lo_w, hi_w)
    s2_w = Unsqueeze (s_w, ax1)
    g2_w = Unsqueeze (g_w, ax1)
    sa_w = Add (s2_w, ar_k)
    sad_w = Mul (sa_w, d)
    idx_w = Add (sad_w, g2_w)                             # (W, k) neighbor columns
    rel_w = Sub (s_w, p_w)
    rel2_w = Unsqueeze (rel_w, ax1)
    rela_w = Add (rel2_w, ar_k)
    bias_w = Add (rela_w, km1)                            # (W, k) rpb columns

    # ---- gather the k x k neighbors of every query: (B, nh, H, W, k*k, hd)
    head4d = Constant <value_ints: ints = [0, 0, 0, 0]> ()
    kk = Mul (k, k)
    kk1 = Unsqueeze (kk, ax0)
    nb_shape = Concat <axis = 0> (head4d, kk1, minus1)    # [0, 0, 0, 0, k*k, -1]
    k_h = Gather <axis = 2> (k_all, idx_h)                # (B, nh, H, k, Wp, hd)
    k_hw = Gather <axis = 4> (k_h, idx_w)                 # (B, nh, H, k, W, k, hd)
    k_t = Transpose <perm = [0, 1, 2, 4, 3, 5, 6]> (k_hw)  # (B, nh, H, W, k, k, hd)
    kn = Reshape (k_t, nb_shape)
    v_h = Gather <axis = 2> (v_all, idx_h)
    v_hw = Gather <axis = 4> (v_h, idx_w)
    v_t = Transpose <perm = [0, 1, 2, 4, 3, 5, 6]> (v_hw)
    vn = Reshape (v_t, nb_shape)

    # ---- logits + relative position bias, softmax over the k*k neighbors, weighted sum of V
    q5 = Unsqueeze (q, ax4)                               # (B, nh, H, W, 1, hd)
    kn_t = Transpose <perm = [0, 1, 2, 3, 5, 4]> (kn)     # (B, nh, H, W, hd, k*k)
    qk = MatMul (q5, kn_t)                                # (B, nh, H, W, 1, k*k)
    logits = Mul (qk, sc)
    r = Cast <to = 1> (rpb)                               # (nh, 2k-1, 2k-1)
    r_h = Gather <axis = 1> (r, bias_h)                   # (nh, H, k, 2k-1)
    r_hw = Gather <axis = 3> (r_h, bias_w)                # (nh, H, k, W, k)
    r_t = Transpose <perm = [0, 1, 3, 2, 4]> (r_hw)       # (nh, H, W, k, k)
    bias_shape = Constant <value_ints: ints = [0, 0, 0, 1, -1]> ()
    bias = Reshape (r_t, bias_shape)                      # (nh, H, W, 1, k*k), broadcast over B
    biased = Add (logits, bias)
    attn = Softmax <axis = -1> (biased)
    o = MatMul (attn, vn)                                 # (B, nh, H, W, 1, hd)
    o5 = Squeeze (o, ax4)                                 # (B, nh, H, W, hd)
    o4 = Transpose <perm = [0, 2, 3, 1, 4]> (o5)          # (B, H, W, nh, hd)
    out_shape = Constant <value_ints: ints = [0, 0, 0, -1]> ()
    o_flat = Reshape (o4, out_shape)                      # (B, H, W, C)
    out = CastLike (o_flat, qkv)
}}
"""


def function_proto() -> onnx.FunctionProto:
    """The model-local function ``tdeploy::NeighborhoodAttention2D`` (reference math, standard ops)."""
    return onnx.parser.parse_function(_FUNCTION_TEXT)


# ---- the node, emitted by torch.onnx.export through custom_translation_table
_A = defs.OpSchema.AttrType
_SCHEMA = defs.OpSchema(
    OP_TYPE,
    DOMAIN,
    1,
    doc="Neighborhood attention (NATTEN 0.17 semantics with rpb); see plugins/neighborhood_attention/README.md",
    inputs=[defs.OpSchema.FormalParameter("qkv", "T"), defs.OpSchema.FormalParameter("rpb", "T")],
    outputs=[defs.OpSchema.FormalParameter("out", "T")],
    type_constraints=[("T", ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"], "")],
    attributes=[
        defs.OpSchema.Attribute("num_heads", _A.INT, "number of heads"),
        defs.OpSchema.Attribute("kernel_size", _A.INT, "neighborhood size k (odd)"),
        defs.OpSchema.Attribute("dilation", _A.INT, "dilation d"),
        defs.OpSchema.Attribute("scale", _A.FLOAT, "logit scale"),
        defs.OpSchema.Attribute("plugin_namespace", _A.STRING, "TensorRT plugin namespace"),
        defs.OpSchema.Attribute("plugin_version", _A.STRING, "TensorRT plugin version"),
    ],
)
# onnxscript's tracer needs a schema to emit a node; this one is used for that only (not registered).
_NODE = Op(Opset(DOMAIN, 1), OP_TYPE, _SCHEMA)


def translate(qkv, rpb=None, num_heads: int = 1, kernel_size: int = 7, dilation: int = 1, scale: float = 1.0):
    """torch.ops.tdeploy.neighborhood_attention -> one tdeploy node (onnxscript, trace mode)."""
    if rpb is None:  # keep one input signature: an all-zero bias adds nothing
        rpb = op.CastLike(op.ConstantOfShape([num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1]), qkv)
    return _NODE(
        qkv,
        rpb,
        num_heads=num_heads,
        kernel_size=kernel_size,
        dilation=dilation,
        scale=float(scale),
        plugin_namespace=PLUGIN_NAMESPACE,
        plugin_version=PLUGIN_VERSION,
    )


def add_local_function(model: onnx.ModelProto) -> onnx.ModelProto:
    """Post-pass: give every graph that uses the node its model-local function (in place; returns model).

    Idempotent. Adds the ``tdeploy`` opset import if missing. Does nothing when the op is unused.
    """
    used = any(n.domain == DOMAIN and n.op_type == OP_TYPE for n in _all_nodes(model.graph))
    if not used:
        return model
    if not any(f.domain == DOMAIN and f.name == OP_TYPE for f in model.functions):
        model.functions.append(function_proto())
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(DOMAIN, 1))
    return model


def _all_nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:  # nodes inside If/Loop/Scan bodies
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attr.g)
            for g in attr.graphs:
                yield from _all_nodes(g)
