"""The backends a user names on the command line (``--backends ort,trt``) and the runner of each."""

from __future__ import annotations

from tdeploy.artifact.folder import Artifact
from tdeploy.errors import TdeployError
from tdeploy.runtime import OrtRunner, Runner, TorchRunner
from tdeploy.tensorrt.runner import TrtRunner

BACKENDS = ("torch", "ort", "trt")


def make_runner(backend: str, artifact: Artifact, graph: str = "model", *, threads: int = 0,
                torch_module=None, device: str = "cpu") -> Runner:
    """The (not yet activated) runner of ``backend`` for one graph of ``artifact`` (``device``: PyTorch's)."""
    spec = artifact.sidecar.graphs[graph].export_spec()
    if backend == "torch":
        if torch_module is None:
            raise TdeployError("the torch backend needs the PyTorch model (internal error: none was given)")
        return TorchRunner(torch_module, [i.name for i in spec.inputs], list(spec.outputs), device=device,
                           threads=threads or None)
    if backend == "ort":
        return OrtRunner(artifact.graph_path(graph), threads=threads)
    if backend == "trt":
        return TrtRunner.for_artifact(artifact, graph)
    raise TdeployError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}")
