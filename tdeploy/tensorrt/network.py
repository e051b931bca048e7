"""Parsing an ONNX graph into a TensorRT network definition, and describing the network as built.

The same code serves both runtimes (``tensorrt`` and ``tensorrt_rtx`` share the Python API used
here). Networks are strongly typed: precision lives in the ONNX graph (FP16 tensors with FP32
islands, explicit Q/DQ), never in builder flags, which TensorRT 11 and TensorRT-RTX do not have.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tdeploy.errors import TdeployError
from tdeploy.plugins.registry import plugin_ops
from tdeploy.tensorrt.runtimes import Runtime, tensorrt_major

# What TensorRT's ONNX parser says when a node name repeats (a model-local function inlined twice).
DUPLICATE_NODE_WARNING = "already exists, the output tensors of this new instance will not be queryable"


@dataclass
class ParsedNetwork:
    """Builder, network and parser of one graph (TensorRT keeps no references: hold them together)."""

    builder: Any
    network: Any
    parser: Any
    logger: Any


def network_flag_names(runtime: Runtime, available: set[str] | frozenset[str]) -> list[str]:
    """Names of the NetworkDefinitionCreationFlag members to set.

    TensorRT 10 needs STRONGLY_TYPED; TensorRT 11 and TensorRT-RTX are always strongly typed (the
    member is there but ignored), so none is passed. PREFER_AOT_PYTHON_PLUGINS (10.9+) makes TensorRT
    embed the AOT form of tdeploy's QDP plugins: no Python and no plugin library at run time.
    """
    names = []
    if not runtime.is_rtx and tensorrt_major(runtime.version) < 11 and "STRONGLY_TYPED" in available:
        names.append("STRONGLY_TYPED")
    if "PREFER_AOT_PYTHON_PLUGINS" in available:
        names.append("PREFER_AOT_PYTHON_PLUGINS")
    return names


def format_parser_error(onnx_name: str, node_name: str, op_type: str, desc: str) -> str:
    """One line per parser error, naming the node (and what to do for tdeploy's own ops)."""
    where = f"node {node_name or '?'}" + (f" ({op_type})" if op_type else "")
    line = f"{onnx_name}: {where}: {' '.join(str(desc).split())}"
    if op_type in {op.name for op in plugin_ops()}:
        line += ("; the tdeploy plugin for it could not be used (check the TensorRT log above), "
                 "or re-export with --no-plugins")
    return line


def parse_onnx(runtime: Runtime, onnx_path: Path, logger, *, model_bytes: bytes | None = None) -> ParsedNetwork:
    """Parse ``onnx_path`` (or ``model_bytes``, a rewritten copy of it) into a strongly typed network."""
    trt = runtime.module
    builder = trt.Builder(logger)
    members = set(trt.NetworkDefinitionCreationFlag.__members__)
    flags = 0
    for name in network_flag_names(runtime, members):
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if model_bytes is None:
        ok = parser.parse_from_file(str(onnx_path))  # from the file: external weights resolve beside it
    else:
        ok = parser.parse(model_bytes, str(onnx_path))
    if not ok:
        lines = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            lines.append(format_parser_error(onnx_path.name, _call(err, "node_name"), _call(err, "node_operator"),
                                             err.desc()))
        more = f" (and {len(lines) - 1} more, in the TensorRT log above)" if len(lines) > 1 else ""
        raise TdeployError(f"{runtime.label}'s ONNX parser rejected {lines[0] if lines else onnx_path.name}{more}")
    return ParsedNetwork(builder, network, parser, logger)


def layer_counts(runtime: Runtime, network) -> dict[str, Any]:
    """``{"total": N, "plugins": {"WindowAttention": n, ...}}``: the network's layers, and its plugin layers
    by plugin name (tdeploy nodes that went to their model-local function add ordinary layers instead)."""
    trt = runtime.module
    plugins: Counter[str] = Counter()
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type == trt.LayerType.PLUGIN_V3:
            layer.__class__ = trt.IPluginV3Layer  # the Python API returns the base class
            core = layer.plugin.get_capability_interface(trt.PluginCapabilityType.CORE)
            plugins[str(core.plugin_name)] += 1
        elif layer.type in (trt.LayerType.PLUGIN_V2, trt.LayerType.PLUGIN):
            layer.__class__ = trt.IPluginV2Layer
            plugins[str(layer.plugin.plugin_type)] += 1
    return {"total": int(network.num_layers), "plugins": dict(sorted(plugins.items()))}


def _call(obj, method: str) -> str:
    fn = getattr(obj, method, None)  # node_name/node_operator: TensorRT 10+
    try:
        return str(fn()) if fn is not None else ""
    except Exception:  # noqa: BLE001 - a field we only use for the message
        return ""
