"""Export form: one ``tdeploy::NeighborhoodAttention2D`` node plus a model-local ONNX function with the same math.

The node carries ``num_heads``, ``kernel_size``, ``dilation`` (ints), ``scale`` (float),
``plugin_namespace="tdeploy"`` and ``plugin_version="1"``; its inputs are ``qkv`` and ``rpb`` (a call
without rpb gets an all-zero rpb: adding zeros changes nothing and keeps one input signature for
TensorRT). The model-local function of the same domain and name holds the reference math in standard
opset-18 ops; the neighbour indices come from ``Shape(qkv)`` at run time, so no spatial size is baked
in. ONNX Runtime inlines the function and runs the file as it is; TensorRT's parser hands the node to
the registered plugin first; ``onnx.inliner.inline_local_functions`` gives the plain-ops
(``--no-plugins``) form. As for window attention, the translation emits only the bare node and
:func:`tdeploy.plugins.onnx_functions.finalize_plugin_nodes` attaches the function after export.
"""

from onnx import defs
from onnxscript import FLOAT, script
from onnxscript import opset18 as op
from onnxscript.values import Op, Opset

from tdeploy.plugins.registry import DOMAIN, PLUGIN_NAMESPACE, PLUGIN_VERSION

OP_TYPE = "NeighborhoodAttention2D"
tdeploy_opset = Opset(DOMAIN, 1)


# Shapes in comments; k = kernel_size, d = dilation, nh = num_heads, hd = head_dim, Hp/Wp = the padded
# sizes max(H, k*d)/max(W, k*d). Per axis (rows shown; columns are the same with W): g = i % d,
# p = i // d, Lg = (Hp - g + d - 1) // d, s = min(max(p - k//2, 0), Lg - k),
# neighbour a = (s + a) * d + g, bias index = (k - 1) + s - p + a   (see reference.py).
@script(tdeploy_opset, default_opset=op)
def NeighborhoodAttention2D(
    qkv,  # (B, H, W, 3*C)
    rpb,  # (nh, 2k-1, 2k-1)
    num_heads: int,
    kernel_size: int,
    dilation: int,
    scale: float,
    plugin_namespace: str = "tdeploy",  # read by TensorRT's parser, unused by the math
    plugin_version: str = "1",
):
    nh = op.Constant(value_int=num_heads)
    k = op.Constant(value_int=kernel_size)
    d = op.Constant(value_int=dilation)
    sc = op.Constant(value_float=scale)
    c0 = op.Constant(value_int=0)
    c1 = op.Constant(value_int=1)
    c2 = op.Constant(value_int=2)
    ax0 = op.Constant(value_ints=[0])
    ax1 = op.Constant(value_ints=[1])
    ax4 = op.Constant(value_ints=[4])

    # ---- runtime sizes and the zero padding of small maps (bottom/right, up to k*d)
    x = op.Cast(qkv, to=FLOAT.dtype)  # (B, H, W, 3C) fp32
    shp = op.Shape(x)
    H = op.Gather(shp, c1)
    W = op.Gather(shp, c2)
    kd = op.Mul(k, d)
    Hp = op.Max(H, kd)
    Wp = op.Max(W, kd)
    pads = op.Concat(op.Constant(value_ints=[0, 0, 0, 0, 0]), op.Unsqueeze(op.Sub(Hp, H), ax0),
                     op.Unsqueeze(op.Sub(Wp, W), ax0), ax0, axis=0)
    xp = op.Pad(x, pads)  # (B, Hp, Wp, 3C)

    # ---- split q, k, v: (B, Hp, Wp, 3, nh, hd) -> 3 x (B, nh, Hp, Wp, hd); q cropped to (B, nh, H, W, hd)
    minus1 = op.Constant(value_ints=[-1])
    x6 = op.Reshape(xp, op.Concat(op.Constant(value_ints=[0, 0, 0, 3]), op.Unsqueeze(nh, ax0), minus1, axis=0))
    xt = op.Transpose(x6, perm=[3, 0, 4, 1, 2, 5])
    q_all = op.Gather(xt, c0, axis=0)
    k_all = op.Gather(xt, c1, axis=0)
    v_all = op.Gather(xt, c2, axis=0)
    q_ends = op.Concat(op.Unsqueeze(H, ax0), op.Unsqueeze(W, ax0), axis=0)
    q = op.Slice(q_all, op.Constant(value_ints=[0, 0]), q_ends, op.Constant(value_ints=[2, 3]))

    # ---- neighbour and bias indices per axis, from the runtime sizes
    ns = op.Div(k, c2)
    ar_k = op.Range(c0, k, c1)  # (k,)
    km1 = op.Sub(k, c1)
    i_h = op.Range(c0, H, c1)  # (H,)
    g_h = op.Mod(i_h, d)
    p_h = op.Div(i_h, d)
    lg_h = op.Div(op.Sub(op.Add(Hp, d), op.Add(g_h, c1)), d)  # pixels in the dilation group
    s_h = op.Min(op.Max(op.Sub(p_h, ns), c0), op.Sub(lg_h, k))  # window start, group coordinates
    idx_h = op.Add(op.Mul(op.Add(op.Unsqueeze(s_h, ax1), ar_k), d), op.Unsqueeze(g_h, ax1))  # (H, k) rows
    bias_h = op.Add(op.Add(op.Unsqueeze(op.Sub(s_h, p_h), ax1), ar_k), km1)  # (H, k) rpb rows
    i_w = op.Range(c0, W, c1)  # (W,)
    g_w = op.Mod(i_w, d)
    p_w = op.Div(i_w, d)
    lg_w = op.Div(op.Sub(op.Add(Wp, d), op.Add(g_w, c1)), d)
    s_w = op.Min(op.Max(op.Sub(p_w, ns), c0), op.Sub(lg_w, k))
    idx_w = op.Add(op.Mul(op.Add(op.Unsqueeze(s_w, ax1), ar_k), d), op.Unsqueeze(g_w, ax1))  # (W, k) columns
    bias_w = op.Add(op.Add(op.Unsqueeze(op.Sub(s_w, p_w), ax1), ar_k), km1)  # (W, k) rpb columns

    # ---- gather the k x k neighbours of every query: (B, nh, H, W, k*k, hd)
    nb_shape = op.Concat(op.Constant(value_ints=[0, 0, 0, 0]), op.Unsqueeze(op.Mul(k, k), ax0), minus1, axis=0)
    k_hw = op.Gather(op.Gather(k_all, idx_h, axis=2), idx_w, axis=4)  # (B, nh, H, k, W, k, hd)
    kn = op.Reshape(op.Transpose(k_hw, perm=[0, 1, 2, 4, 3, 5, 6]), nb_shape)
    v_hw = op.Gather(op.Gather(v_all, idx_h, axis=2), idx_w, axis=4)
    vn = op.Reshape(op.Transpose(v_hw, perm=[0, 1, 2, 4, 3, 5, 6]), nb_shape)

    # ---- logits + relative position bias, softmax over the k*k neighbours, weighted sum of V
    q5 = op.Unsqueeze(q, ax4)  # (B, nh, H, W, 1, hd)
    logits = op.Mul(op.MatMul(q5, op.Transpose(kn, perm=[0, 1, 2, 3, 5, 4])), sc)  # (B, nh, H, W, 1, k*k)
    r = op.Cast(rpb, to=FLOAT.dtype)  # (nh, 2k-1, 2k-1)
    r_hw = op.Gather(op.Gather(r, bias_h, axis=1), bias_w, axis=3)  # (nh, H, k, W, k)
    bias = op.Reshape(op.Transpose(r_hw, perm=[0, 1, 3, 2, 4]), op.Constant(value_ints=[0, 0, 0, 1, -1]))
    attn = op.Softmax(op.Add(logits, bias), axis=-1)  # bias (nh, H, W, 1, k*k) broadcasts over B
    o = op.Squeeze(op.MatMul(attn, vn), ax4)  # (B, nh, H, W, hd)
    o_flat = op.Reshape(op.Transpose(o, perm=[0, 2, 3, 1, 4]), op.Constant(value_ints=[0, 0, 0, -1]))
    return op.CastLike(o_flat, qkv)  # (B, H, W, C)


# The bare custom node (the exporter would inline a function called from the translation; see
# window_attention/onnx.py). onnxscript's tracer binds inputs and attributes through an OpSchema.
_A = defs.OpSchema.AttrType
_SCHEMA = defs.OpSchema(
    OP_TYPE,
    DOMAIN,
    1,
    doc="Neighborhood attention (NATTEN 0.17 semantics with rpb); see plugins/neighborhood_attention/README.md",
    inputs=[defs.OpSchema.FormalParameter("qkv", "T"), defs.OpSchema.FormalParameter("rpb", "T")],
    outputs=[defs.OpSchema.FormalParameter("out", "T")],
    type_constraints=[("T", ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"], "qkv's dtype")],
    attributes=[
        defs.OpSchema.Attribute("num_heads", _A.INT, "number of heads"),
        defs.OpSchema.Attribute("kernel_size", _A.INT, "neighborhood size k (odd)"),
        defs.OpSchema.Attribute("dilation", _A.INT, "dilation d"),
        defs.OpSchema.Attribute("scale", _A.FLOAT, "logit scale"),
        defs.OpSchema.Attribute("plugin_namespace", _A.STRING, "TensorRT plugin namespace"),
        defs.OpSchema.Attribute("plugin_version", _A.STRING, "TensorRT plugin version"),
    ],
)
_NeighborhoodAttentionNode = Op(tdeploy_opset, OP_TYPE, _SCHEMA)


def neighborhood_attention_translation(qkv, rpb=None, num_heads: int = 1, kernel_size: int = 7, dilation: int = 1,
                                       scale: float = 1.0, backend: str = ""):
    """torch.ops.tdeploy.neighborhood_attention -> one tdeploy node (``backend`` is eager-only)."""
    if rpb is None:  # keep one input signature: an all-zero bias adds nothing
        rpb = op.CastLike(op.ConstantOfShape([num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1]), qkv)
    return _NeighborhoodAttentionNode(
        qkv,
        rpb,
        num_heads=num_heads,
        kernel_size=kernel_size,
        dilation=dilation,
        scale=float(scale),
        plugin_namespace=PLUGIN_NAMESPACE,
        plugin_version=PLUGIN_VERSION,
    )
