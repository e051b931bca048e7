"""Putting the C++ plugin library's kernels into a graph: one ``kernels`` attribute per tdeploy node.

For ``--plugins cpp`` the build compiles, for every tdeploy node, its Triton kernel for the node's
configuration (read from its attributes and the static dims ONNX shape inference gives its inputs),
for the node's dtype and each target architecture, and stores them in the node
(:mod:`tdeploy.plugins.cpp_kernels`). TensorRT's parser hands the attribute to the plugin as a field;
the plugin keeps it in the engine. The graph with kernels is also written beside the engine
(``<engine stem>.kernels.onnx``), so that trtexec or Triton Inference Server's model repository can build
the same engine from it without Python.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx.shape_inference

from tdeploy.artifact.atomic import atomic_copy, atomic_write_bytes
from tdeploy.errors import TdeployError
from tdeploy.plugins.cpp_kernels import ATTRIBUTE, DTYPE_NAMES, serialize
from tdeploy.plugins.onnx_functions import nodes
from tdeploy.plugins.registry import DOMAIN, plugin_ops

_ELEM = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}


def _value_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """name -> type of every value whose type ONNX shape inference knows (inputs, initializers, inferred)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]}
    for init in model.graph.initializer:
        types.setdefault(init.name, onnx.helper.make_tensor_type_proto(init.data_type, list(init.dims)))
    return types


def _shape(tp: onnx.TypeProto | None) -> tuple | None:
    if tp is None or not tp.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tp.tensor_type.shape.dim)


def attach_kernels(model: onnx.ModelProto, archs: list[int]) -> tuple[onnx.ModelProto, int]:
    """``model`` (changed in place) with every tdeploy node carrying its kernels; returns (model, nodes)."""
    ops = {op.name: op for op in plugin_ops()}
    types = _value_types(model)
    done, cache = 0, {}
    for node in nodes(model.graph):
        if node.domain != DOMAIN:
            continue
        op = ops[node.op_type]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute if a.name != ATTRIBUTE}
        shapes = {name: _shape(types.get(value)) for name, value in zip(op.inputs, node.input)}
        elem = types.get(node.input[0])
        dtype = _ELEM.get(elem.tensor_type.elem_type) if elem is not None else None
        if elem is not None and dtype is None:
            raise TdeployError(f"node {node.name} ({node.op_type}): the C++ plugin has kernels for "
                               f"{' and '.join(DTYPE_NAMES)} inputs, this one is "
                               f"{onnx.TensorProto.DataType.Name(elem.tensor_type.elem_type)}")
        dtypes = [dtype] if dtype else list(DTYPE_NAMES)  # unknown: every one, the plugin picks
        key = (node.op_type, repr(sorted((k, str(v)) for k, v in attrs.items() if not k.startswith("plugin_"))),
               repr(shapes), tuple(dtypes), tuple(archs))
        if key not in cache:
            try:
                cache[key] = serialize(op.kernel_records(attrs, shapes, dtypes, archs))
            except TdeployError as exc:
                raise TdeployError(f"node {node.name}: {exc}") from None
        del node.attribute[:]  # re-add in order, without an old kernels attribute
        for name, value in attrs.items():
            node.attribute.append(onnx.helper.make_attribute(name, value))
        node.attribute.append(onnx.helper.make_attribute(ATTRIBUTE, cache[key]))
        done += 1
    return model, done


def kernel_graph_path(engine: Path) -> Path:
    """``model.engine`` -> ``model.kernels.onnx``: the graph with the C++ plugins' kernels, for trtexec."""
    return engine.with_name(engine.stem + ".kernels.onnx")


def _external_locations(model: onnx.ModelProto) -> dict[str, list[onnx.StringStringEntryProto]]:
    """location -> the ``location`` entries that name it, over every initializer stored outside the graph."""
    found: dict[str, list[onnx.StringStringEntryProto]] = {}
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    found.setdefault(entry.value, []).append(entry)
    return found


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def write_kernel_graph(model: onnx.ModelProto, path: Path, base: Path) -> Path:
    """Save the graph with kernels atomically at ``path``; returns ``path``.

    ``base`` is the folder the graph's external-data locations are relative to (its ONNX file's). A graph
    past 2 GiB keeps its weights in a data file, and TensorRT's parser (like onnx's loader) refuses a
    location outside the graph's folder ("Relative paths to parent (../) are not allowed"): so when
    ``path`` is in another folder, each data file is copied beside it as ``<path name>.data`` (not
    hard-linked: onnx's loader refuses a data file with several links, "a potential hardlink attack") and
    the locations of the written copy are renamed to it. Offsets stay: the bytes are the same."""
    path, base = Path(path), Path(base)
    if _external_locations(model) and path.parent.resolve() != base.resolve():
        model = _copy(model)  # the caller's model keeps its locations (the build parses it from ``base``)
        locations = _external_locations(model)
        for i, (location, entries) in enumerate(sorted(locations.items())):
            name = f"{path.name}.data" if len(locations) == 1 else f"{path.name}.{i}.data"
            atomic_copy(base / location, path.parent / name)
            for entry in entries:
                entry.value = name
    atomic_write_bytes(path, model.SerializeToString())
    return path


def copy_kernel_graph(src: Path, dest: Path) -> Path:
    """Copy a graph with kernels (and its external data, see :func:`write_kernel_graph`) to ``dest``."""
    return write_kernel_graph(onnx.load(str(src), load_external_data=False), dest, Path(src).parent)
