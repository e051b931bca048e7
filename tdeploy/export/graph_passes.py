"""Passes over an exported ONNX graph that keep it portable (standard ops + tdeploy nodes)."""

from __future__ import annotations

import onnx

from tdeploy.artifact.spec import ExportSpec


def rename_dynamic_dims(model: onnx.ModelProto, spec: ExportSpec, options=None) -> None:
    """Give the graph inputs' dynamic axes the spec's names ("batch", "height", ...).

    torch.export names them after its symbols ("s0", "16*height_blocks"); the same symbol elsewhere
    in the graph (outputs, value_info) gets the same new name so that shapes stay consistent.
    """
    mapping: dict[str, str] = {}
    for graph_input, inp in zip(model.graph.input, spec.inputs):
        dims = graph_input.type.tensor_type.shape.dim
        for axis, name in inp.dynamic_axes().items():
            if axis < len(dims) and dims[axis].dim_param:
                mapping.setdefault(dims[axis].dim_param, name)
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for d in value.type.tensor_type.shape.dim:
            if d.dim_param in mapping:
                d.dim_param = mapping[d.dim_param]
