"""FP32 ONNX graph -> FP16 graph with FP32 islands (no extra dependency: a pass over the proto).

TensorRT 10 (strongly typed) and 11 run each tensor in the dtype the graph gives it, so the graph
itself says where FP16 is safe. Every node gets a mode:

- ``fp16``: matmuls, convolutions, element-wise arithmetic, activations and tdeploy's attention
  nodes (their TensorRT plugins compute in FP16 with FP32 accumulation; their model-local ONNX
  functions cast to FP32 internally, so ONNX Runtime runs them in FP32 either way).
- ``fp32`` islands: ops where FP16 overflows or loses too much (:data:`FP32_OPS`: LayerNorm and the
  other normalisations and reductions, Softmax, Pow/Sqrt/Exp/Log/Reciprocal, Resize), any op this
  pass does not know, and the *boundary* arithmetic before the first and after the last heavy op
  (conv/matmul/attention) of the graph: SwinIR's ``(x - mean) * img_range`` and
  ``x / img_range + mean`` plus the crop, where FP16 rounding shows up directly in pixel values.
- ``follow``: data movement (Reshape, Transpose, Concat, Slice, ...) takes the dtype of what it moves
  so that no Cast pair is spent on it.

Casts are inserted exactly where a tensor's dtype differs from what its consumer needs; float
initializers used in FP16 get an FP16 copy (clipped to +-65504, FP16's largest finite value).
Inputs and outputs stay FP32 unless ``io_dtype="fp16"``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tdeploy.errors import TdeployError

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16
FP16_MAX = 65504.0

# Heavy ops: the compute FP16 is for. They also delimit the boundary islands.
HEAVY_OPS = {"MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum"}
# Element-wise ops that are accurate in FP16 on normalised activations.
FP16_OPS = HEAVY_OPS | {
    "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "PRelu", "Gelu", "Erf", "Sigmoid", "HardSigmoid",
    "HardSwish", "Tanh", "Clip", "Neg", "Abs", "Max", "Min", "MaxPool", "AveragePool", "Sign", "Floor",
    "Ceil", "Round",
}
# Kept in FP32 whatever the measurements of one model say: reductions accumulate, exp/pow overflow.
FP32_OPS = {
    "LayerNormalization", "InstanceNormalization", "GroupNormalization", "BatchNormalization",
    "LpNormalization", "Softmax", "LogSoftmax", "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1",
    "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceProd", "Pow", "Sqrt", "Exp", "Log", "Reciprocal",
    "Resize", "Range", "CumSum", "GlobalAveragePool", "Softplus",
}
# Data movement: the output dtype is the input's.
FOLLOW_OPS = {
    "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Concat", "Split", "Slice", "Gather",
    "GatherElements", "GatherND", "Expand", "Tile", "Identity", "Pad", "DepthToSpace", "SpaceToDepth",
    "Where", "Cast", "CastLike", "ReduceMax", "ReduceMin", "Dropout", "ScatterND", "ScatterElements", "Trilu",
}
# Inputs whose dtype is fixed by the op (not the op's T): (op_type, input index).
FIXED_INPUTS = {("Resize", 1), ("Resize", 2)}


@dataclass
class Fp16Report:
    """What the pass did, for the sidecar."""

    fp16_nodes: int = 0
    fp32_nodes: dict[str, int] = field(default_factory=dict)  # op_type -> count kept in FP32
    boundary_fp32: list[str] = field(default_factory=list)  # node names kept FP32 as boundary arithmetic
    casts_inserted: int = 0
    io_dtype: str = "fp32"

    def to_json(self) -> dict:
        return {
            "pass": "tdeploy.export.precision.fp16",
            "fp16_nodes": self.fp16_nodes,
            "fp32_islands": dict(sorted(self.fp32_nodes.items())),
            "boundary_fp32_nodes": self.boundary_fp32,
            "casts_inserted": self.casts_inserted,
            "io_dtype": self.io_dtype,
        }


def _has_subgraph(node: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor of the main graph (shape inference through local functions)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=False)
    except Exception:  # inference is best effort here: fall back to what the exporter recorded
        inferred = model
    types = {}
    for vi in [*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info]:
        if vi.type.HasField("tensor_type"):
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in model.graph.initializer:
        types[init.name] = init.data_type
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    types[node.output[0]] = a.t.data_type
                elif a.name in ("value_float", "value_floats"):
                    types[node.output[0]] = F32
    return types


def _boundary_nodes(graph: onnx.GraphProto, custom_domains: set[str]) -> set[int]:
    """Indices of nodes before the first / after the last heavy op on every path (kept FP32)."""
    nodes = list(graph.node)
    heavy = [n.op_type in HEAVY_OPS or n.domain in custom_domains for n in nodes]
    # Forward: tensors downstream of a heavy op.
    after_heavy: set[str] = set()
    for n, h in zip(nodes, heavy):
        if h or any(i in after_heavy for i in n.input):
            after_heavy.update(n.output)
    # Backward: tensors that feed a heavy op.
    feeds_heavy: set[str] = set()
    for n, h in zip(reversed(nodes), reversed(heavy)):
        if h or any(o in feeds_heavy for o in n.output):
            feeds_heavy.update(i for i in n.input if i)
    out = set()
    for idx, (n, h) in enumerate(zip(nodes, heavy)):
        if h:
            continue
        before = not any(i in after_heavy for i in n.input)
        after = not any(o in feeds_heavy for o in n.output)
        if before or after:
            out.add(idx)
    return out


def convert_to_fp16(
    model: onnx.ModelProto,
    *,
    io_dtype: str = "fp32",
    keep_fp32_ops: set[str] | frozenset = frozenset(),
    keep_fp32_nodes: set[str] | frozenset = frozenset(),
    boundary_fp32: bool = True,
) -> tuple[onnx.ModelProto, Fp16Report]:
    """Return an FP16 copy of ``model`` (FP32 islands, Casts at the seams) and what was done.

    Args:
        io_dtype: "fp32" keeps graph inputs/outputs FP32 (Casts inside); "fp16" makes float IO FP16.
        keep_fp32_ops / keep_fp32_nodes: more op types / node names to keep in FP32.
        boundary_fp32: keep arithmetic before the first and after the last heavy op in FP32.
    """
    if io_dtype not in ("fp32", "fp16"):
        raise TdeployError(f"io dtype {io_dtype!r} is not one of fp32, fp16")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    if any(_has_subgraph(n) for n in graph.node):
        raise TdeployError("--precision fp16 does not handle control flow (If/Loop/Scan) subgraphs; export without them")
    types = _elem_types(out)
    custom_domains = {f.domain for f in out.functions}
    report = Fp16Report(io_dtype=io_dtype)
    boundary = _boundary_nodes(graph, custom_domains) if boundary_fp32 else set()
    inits = {i.name: i for i in graph.initializer}
    fp32_ops = FP32_OPS | set(keep_fp32_ops)

    cur: dict[str, int] = {}  # tensor -> its dtype in the new graph (float tensors only)
    for inp in graph.input:
        if types.get(inp.name) == F32 and inp.name not in inits:
            cur[inp.name] = F16 if io_dtype == "fp16" else F32
            if io_dtype == "fp16":
                inp.type.tensor_type.elem_type = F16
    for name in inits:
        if types.get(name) == F32:
            cur[name] = F32
    constants: set[str] = set(inits)  # tensors we may convert directly instead of casting

    new_nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}
    new_inits: list[onnx.TensorProto] = []

    def as_dtype(name: str, dtype: int) -> str:
        """``name`` as ``dtype``: itself, an FP16 copy of a constant, or a Cast's output."""
        if not name or cur.get(name) in (None, dtype):
            return name
        key = (name, dtype)
        if key not in casts:
            suffix = "_fp16" if dtype == F16 else "_fp32"
            if name in constants and name in inits:
                arr = numpy_helper.to_array(inits[name])
                if dtype == F16:
                    arr = np.clip(arr, -FP16_MAX, FP16_MAX).astype(np.float16)
                else:
                    arr = arr.astype(np.float32)
                new_inits.append(numpy_helper.from_array(arr, name + suffix))
            else:
                new_nodes.append(helper.make_node("Cast", [name], [name + suffix], to=dtype,
                                                  name=f"{name}_cast{suffix}"))
                report.casts_inserted += 1
            casts[key] = name + suffix
        return casts[key]

    fp32_count: Counter = Counter()
    for idx, node in enumerate(graph.node):
        float_in = [i for i in node.input if i and cur.get(i) is not None]
        float_out = [o for o in node.output if types.get(o) == F32]
        if node.op_type == "Constant" and float_out:
            # Treat like an initializer: becomes a constant we convert on demand.
            value = numpy_helper.to_array(next(a.t for a in node.attribute if a.name == "value")) \
                if any(a.name == "value" for a in node.attribute) else None
            if value is not None:
                inits[node.output[0]] = numpy_helper.from_array(value.astype(np.float32), node.output[0])
                constants.add(node.output[0])
            cur[node.output[0]] = F32
            new_nodes.append(node)
            continue
        if (not float_in and not float_out) or node.op_type in ("Shape", "Size"):
            new_nodes.append(node)  # Shape/Size read only the shape: any dtype will do
            continue
        op = node.op_type
        if node.domain in custom_domains:
            mode = F16
        elif node.name in keep_fp32_nodes or op in fp32_ops or node.domain not in ("", "ai.onnx"):
            mode = F32
        elif idx in boundary:
            mode = F32
            report.boundary_fp32.append(node.name)
        elif op in FP16_OPS:
            mode = F16
        elif op in FOLLOW_OPS:
            moving = [i for i in float_in if i not in constants]
            mode = F16 if any(cur[i] == F16 for i in moving) else F32
            if op == "Cast" and not float_in:
                mode = F32  # int -> float: a new FP32 tensor
            if op == "CastLike":
                mode = cur.get(node.input[1], F32) if node.input[1] in cur else F32
        else:
            mode = F32
        if mode == F32:
            fp32_count[op] += 1
        else:
            report.fp16_nodes += 1
        for k, name in enumerate(node.input):
            if name in cur and (op, k) not in FIXED_INPUTS:
                if op == "CastLike" and k == 1:
                    continue
                node.input[k] = as_dtype(name, mode)
            elif name in cur and (op, k) in FIXED_INPUTS:
                node.input[k] = as_dtype(name, F32)
        if op == "Cast":
            to = next(a for a in node.attribute if a.name == "to")
            if to.i == F32 and mode == F16 and float_in:
                to.i = F16
        for o in float_out:
            cur[o] = mode
        new_nodes.append(node)
    report.fp32_nodes = dict(fp32_count)

    # Graph outputs: the requested IO dtype, via a renamed producer + Cast.
    want_out = F16 if io_dtype == "fp16" else F32
    producers = {o: n for n in new_nodes for o in n.output}
    for gout in graph.output:
        if gout.name not in cur or cur[gout.name] == want_out:
            if gout.name in cur:
                gout.type.tensor_type.elem_type = cur[gout.name]
            continue
        inner = gout.name + ("_fp16" if cur[gout.name] == F16 else "_fp32") + "_raw"
        prod = producers.get(gout.name)
        if prod is None:  # an output that is an input/initializer as is
            new_nodes.append(helper.make_node("Cast", [gout.name], [inner], to=want_out))
            continue
        for k, o in enumerate(prod.output):
            if o == gout.name:
                prod.output[k] = inner
        for n in new_nodes:
            for k, i in enumerate(n.input):
                if i == gout.name:
                    n.input[k] = inner
        new_nodes.append(helper.make_node("Cast", [inner], [gout.name], to=want_out, name=f"{gout.name}_cast_out"))
        report.casts_inserted += 1
        gout.type.tensor_type.elem_type = want_out

    # Initializers only ever read in FP16 are replaced by their FP16 copy (no FP32 copy kept).
    used = Counter(i for n in new_nodes for i in n.input)
    keep_inits = [i for i in graph.initializer if used[i.name] or i.name in {o.name for o in graph.output}]
    del graph.node[:]
    graph.node.extend(_topo_sort(new_nodes, {i.name for i in graph.input} | {i.name for i in keep_inits}
                                 | {i.name for i in new_inits}))
    del graph.initializer[:]
    graph.initializer.extend(keep_inits + new_inits)
    # value_info: drop float entries (their dtype changed); shape inference refills them.
    kept_vi = [vi for vi in graph.value_info if vi.type.tensor_type.elem_type != F32]
    del graph.value_info[:]
    graph.value_info.extend(kept_vi)
    return out, report


def _topo_sort(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """Cast nodes were appended at the end: put every node after its inputs' producers."""
    produced_by = defaultdict(list)
    for idx, n in enumerate(nodes):
        for o in n.output:
            produced_by[o].append(idx)
    ready = set(available)
    order, done = [], [False] * len(nodes)
    pending = list(range(len(nodes)))
    while pending:
        progressed = False
        rest = []
        for idx in pending:
            n = nodes[idx]
            if all((not i) or i in ready or i not in produced_by for i in n.input):
                order.append(n)
                ready.update(n.output)
                done[idx] = True
                progressed = True
            else:
                rest.append(idx)
        if not progressed:
            raise TdeployError("fp16 pass produced a cyclic graph (internal error)")
        pending = rest
    return order
