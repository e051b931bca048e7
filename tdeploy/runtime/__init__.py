"""Layer 3 -- runners: one interface for every backend (named numpy arrays in, named arrays out) and the
one comparison of their outputs.

Holds the interface (:class:`Runner`), the PyTorch and ONNX Runtime runners, and :mod:`.compare`. The
TensorRT runner lives in :mod:`tdeploy.tensorrt` (the only place that imports TensorRT).
May import: ``tdeploy.errors``, ``tdeploy.artifact`` (0), ``tdeploy.plugins`` (1), ``tdeploy.models`` (2).
"""

from tdeploy.runtime.base import Runner
from tdeploy.runtime.compare import OutputComparison, compare, cosine
from tdeploy.runtime.ort_runner import OrtRunner, default_providers
from tdeploy.runtime.recording import RecordingRunner
from tdeploy.runtime.torch_runner import TorchRunner

__all__ = ["OrtRunner", "OutputComparison", "RecordingRunner", "Runner", "TorchRunner", "compare", "cosine",
           "default_providers"]
