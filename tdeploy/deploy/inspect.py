"""``deploy inspect``: what is inside an artifact's ONNX graphs or a TensorRT engine, without running them."""

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


def describe_engine(path: str | Path, onnx_sha256: str | None = None) -> dict:
    """An engine as its sidecar records it (runtime, targets, profile, plugins, layers, I/O), whether it
    was built from the artifact's graph as it is now (``onnx_sha256``), and, where this machine's
    TensorRT can open it, what the engine itself says."""
    from tdeploy.errors import TdeployError
    from tdeploy.tensorrt.runner import TrtRunner, stale_engine_problem
    from tdeploy.tensorrt.sidecar import load_engine_sidecar

    path = Path(path)
    sidecar = load_engine_sidecar(path)
    info = {
        "file": str(path),
        "bytes": path.stat().st_size,
        "runtime": sidecar["runtime"],
        "targets": sidecar.get("targets", []),
        "gpu": sidecar.get("gpu"),
        "precision": sidecar.get("precision"),
        "profile": sidecar.get("profile"),
        "plugin_form": sidecar.get("plugin_form", "none"),
        "plugin_library": sidecar.get("plugin_library"),
        "layers": sidecar.get("layers"),
        "io": sidecar.get("io"),
        "built_from": sidecar.get("onnx"),
        "stale": stale_engine_problem(path, sidecar, onnx_sha256),
        "created": sidecar.get("created"),
    }
    try:
        with TrtRunner(path, onnx_sha256=onnx_sha256) as runner:
            engine = runner.engine
            info["opened"] = {"layers": engine.num_layers,
                              "io": [f"{n}: {engine.get_tensor_dtype(n).name}{tuple(engine.get_tensor_shape(n))}"
                                     for n in (engine.get_tensor_name(i) for i in range(engine.num_io_tensors))]}
    except TdeployError as exc:
        info["opened"] = None
        info["not_opened"] = str(exc)
    return info


def describe_engine_text(info: dict) -> str:
    runtime = info["runtime"]
    targets = ", ".join(info["targets"]) or "the build GPU's"
    gpu = f" on {info['gpu']['name']}" if info.get("gpu") else ""
    lines = [f"{info['file']}  ({info['bytes'] / 1e6:.1f} MB, built {info.get('created') or '?'})",
             f"  runtime: {runtime.get('name')} {runtime.get('version')}{gpu}; targets sm {targets}",
             f"  precision: {info['precision']}; plugins: {info['plugin_form']}"
             + (f" ({info['plugin_library']['file']})" if info.get("plugin_library") else "")]
    if info.get("built_from"):
        lines.append(f"  built from: {info['built_from'].get('file')} (sha256 {str(info['built_from'].get('sha256'))[:12]})"
                     + (f"; STALE: {info['stale']}" if info["stale"] else ""))
    for name, shapes in (info.get("profile") or {}).items():  # {"min": [...], "opt": [...], "max": [...]}
        lines.append(f"  profile {name}: " + " / ".join("x".join(map(str, shapes[k])) for k in ("min", "opt", "max"))
                     + " (min / opt / max)")
    if info.get("layers"):
        plugins = ", ".join(f"{k} {v}" for k, v in info["layers"].get("plugins", {}).items()) or "none"
        lines.append(f"  layers: {info['layers'].get('total')} in the network (plugin layers: {plugins})")
    for item in info.get("io") or []:  # [{"name", "mode", "dtype", "shape"}], -1: dynamic
        dims = ", ".join("?" if d < 0 else str(d) for d in item["shape"])
        lines.append(f"  {item['mode']}: {item['name']}: {item['dtype']}[{dims}]")
    if info.get("opened"):
        lines.append(f"  opened here: {info['opened']['layers']} engine layers; " + ", ".join(info["opened"]["io"]))
    else:
        lines.append(f"  not opened here: {info.get('not_opened')}")
    return "\n".join(lines)
