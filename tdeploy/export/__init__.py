"""PyTorch -> ONNX: export, graph passes, checks, sidecar."""

from tdeploy.artifact.sidecar import SIDECAR_NAME, GraphInfo, Sidecar
from tdeploy.export.onnx_export import DEFAULT_OPSET, ExportOptions, example_inputs, export

__all__ = ["DEFAULT_OPSET", "SIDECAR_NAME", "ExportOptions", "GraphInfo", "Sidecar", "example_inputs", "export"]
