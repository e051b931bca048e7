"""Attach model-local ONNX functions to the tdeploy plugin nodes of an exported model.

Why a post-pass: ``torch.onnx.export(dynamo=True, opset_version=...)`` (torch 2.13, onnxscript 0.7)
runs onnxscript's version converter, which first INLINES every model-local function. A translation
that calls an ``@onnxscript.script`` function would therefore leave plain ops and no plugin node.
So each op's translation emits the bare custom node (domain ``tdeploy``), and
:func:`finalize_plugin_nodes` then, for every ``tdeploy`` node in the graph (and its subgraphs):

- stamps ``plugin_namespace`` / ``plugin_version`` when the node lacks them (TensorRT's parser
  routes a node carrying ``plugin_namespace`` to the registered plugin first);
- adds the op's model-local function (its reference math in standard ops) once, so ONNX Runtime
  and any other runtime run the file as it is;
- imports the ``tdeploy`` domain.

Each op package gives its function as ``PluginOp.onnx_function`` (an onnxscript ``OnnxFunction``).
``onnx.inliner.inline_local_functions`` on the result gives the plain-ops (``--no-plugins``) model.
:func:`nodes` is the one walker over a graph's nodes (subgraphs included) that tdeploy uses.
"""

from __future__ import annotations

import onnx

from tdeploy.errors import TdeployError
from tdeploy.plugins.registry import DOMAIN, PLUGIN_NAMESPACE, PLUGIN_VERSION, plugin_ops


def _function_protos() -> dict[str, onnx.FunctionProto]:
    return {plugin.name: plugin.onnx_function.to_function_proto() for plugin in plugin_ops()}


def nodes(graph: onnx.GraphProto):
    """Every node of ``graph``, subgraphs (If/Loop/Scan bodies) included."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from nodes(g)


def _stamp(node: onnx.NodeProto, name: str, value: str) -> None:
    if not any(a.name == name for a in node.attribute):
        node.attribute.append(onnx.helper.make_attribute(name, value))


def finalize_plugin_nodes(
    model: onnx.ModelProto, functions: dict[str, onnx.FunctionProto] | None = None
) -> onnx.ModelProto:
    """Make every ``tdeploy`` node runnable everywhere: plugin attributes + model-local function.

    Args:
        model: the exported model; modified in place and returned.
        functions: op_type -> FunctionProto; default: those of :func:`tdeploy.plugins.plugin_ops`.
    """
    functions = _function_protos() if functions is None else functions
    used = []
    for node in nodes(model.graph):
        if node.domain != DOMAIN:
            continue
        if node.op_type not in functions:
            raise TdeployError(
                f"ONNX node {node.name!r} is {DOMAIN}::{node.op_type}, which no tdeploy plugin op defines; "
                f"known: {sorted(functions)}"
            )
        _stamp(node, "plugin_namespace", PLUGIN_NAMESPACE)
        _stamp(node, "plugin_version", PLUGIN_VERSION)
        if node.op_type not in used:
            used.append(node.op_type)
    if not used:
        return model

    imports = {o.domain: o for o in model.opset_import}
    default = imports.get("") or imports.get("ai.onnx")
    if DOMAIN not in imports:
        model.opset_import.append(onnx.helper.make_opsetid(DOMAIN, 1))
    present = {(f.domain, f.name) for f in model.functions}
    for op_type in used:
        proto = onnx.FunctionProto()
        proto.CopyFrom(functions[op_type])
        if (proto.domain, proto.name) in present:
            continue
        # A model-local function must use the model's version of each domain it imports. The bodies
        # are written against opset 18 with ops unchanged since (up to 23): follow the model's.
        for imp in proto.opset_import:
            if imp.domain in ("", "ai.onnx") and default is not None:
                if default.version < imp.version:
                    raise TdeployError(
                        f"{DOMAIN}::{op_type} needs ONNX opset >= {imp.version}, the model has "
                        f"{default.version}; export with opset_version={imp.version} or newer"
                    )
                imp.version = default.version
        model.functions.append(proto)
    return model
