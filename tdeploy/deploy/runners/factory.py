"""Building the runner for a backend name from an artifact."""

from __future__ import annotations

from tdeploy.deploy.artifact import Artifact
from tdeploy.deploy.runners.base import Runner
from tdeploy.deploy.runners.ort_runner import OrtRunner
from tdeploy.deploy.runners.torch_runner import TorchRunner
from tdeploy.errors import TdeployError


def make_runner(backend: str, artifact: Artifact, graph: str = "model", *, threads: int = 0,
                torch_module=None) -> Runner:
    spec = artifact.sidecar.graphs[graph].export_spec()
    if backend == "torch":
        if torch_module is None:
            raise TdeployError("the torch backend needs the PyTorch model (internal error: none was given)")
        return TorchRunner(torch_module, [i.name for i in spec.inputs], list(spec.outputs), threads=threads or None)
    if backend == "ort":
        return OrtRunner(artifact.graph_path(graph), threads=threads)
    if backend == "trt":
        from tdeploy.deploy.runners.trt_runner import TrtRunner

        return TrtRunner.for_artifact(artifact, graph)
    raise TdeployError(f"unknown backend {backend!r}: choose from torch, ort, trt")
