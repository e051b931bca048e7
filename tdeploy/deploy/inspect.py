"""``deploy inspect``: what is inside an artifact's ONNX graphs, without running them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx

from tdeploy.artifact.onnx_file import load_onnx


def _dims(value: onnx.ValueInfoProto) -> str:
    t = value.type.tensor_type
    dims = [d.dim_param or str(d.dim_value) if (d.dim_param or d.dim_value) else "?" for d in t.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "?"
    return f"{value.name}: {dtype}[{', '.join(dims)}]"


def describe_onnx(path: str | Path) -> dict:
    model = load_onnx(path, load_weights=False)
    ops = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}" for n in model.graph.node)
    custom = [
        {"name": n.name, "op": f"{n.domain}::{n.op_type}",
         "attributes": {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}}
        for n in model.graph.node if n.domain not in ("", "ai.onnx")
    ]
    for c in custom:
        c["attributes"] = {k: v.decode() if isinstance(v, bytes) else v for k, v in c["attributes"].items()}
    params = sum(int(onnx.helper.np.prod(t.dims)) for t in model.graph.initializer)
    return {
        "file": str(path),
        "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": [_dims(v) for v in model.graph.input],
        "outputs": [_dims(v) for v in model.graph.output],
        "nodes": len(model.graph.node),
        "parameters": params,
        "op_histogram": dict(ops.most_common()),
        "custom_nodes": custom,
        "local_functions": [f"{f.domain}::{f.name}" for f in model.functions],
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
    }


def describe_text(info: dict) -> str:
    lines = [f"{info['file']}  ({info['producer']})",
             "  opsets: " + ", ".join(f"{k} {v}" for k, v in info["opsets"].items()),
             f"  nodes: {info['nodes']}, parameters: {info['parameters'] / 1e6:.2f}M"]
    lines += ["  inputs:"] + [f"    {i}" for i in info["inputs"]]
    lines += ["  outputs:"] + [f"    {o}" for o in info["outputs"]]
    lines += ["  ops: " + ", ".join(f"{k} x{v}" for k, v in info["op_histogram"].items())]
    if info["custom_nodes"]:
        first = info["custom_nodes"][0]
        lines += [f"  custom nodes: {len(info['custom_nodes'])} ({first['op']}, e.g. {first['attributes']})"]
    else:
        lines += ["  custom nodes: none (standard ONNX ops only)"]
    if info["local_functions"]:
        lines += ["  local functions: " + ", ".join(info["local_functions"])]
    return "\n".join(lines)
