"""PyTorch -> ONNX: export, graph passes, checks, sidecar."""

from tdeploy.export.onnx_export import DEFAULT_OPSET, ExportOptions, example_inputs, export
from tdeploy.export.sidecar import SIDECAR_NAME, GraphInfo, Sidecar

__all__ = ["DEFAULT_OPSET", "SIDECAR_NAME", "ExportOptions", "GraphInfo", "Sidecar", "example_inputs", "export"]
