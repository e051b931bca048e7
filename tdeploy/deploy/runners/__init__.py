"""Runners: ``torch``, ``ort``, ``trt`` behind one interface (dict of arrays in, dict out)."""

from tdeploy.deploy.runners.base import Runner
from tdeploy.deploy.runners.ort_runner import OrtRunner, default_providers
from tdeploy.deploy.runners.torch_runner import TorchRunner

BACKENDS = ("torch", "ort", "trt")

__all__ = ["BACKENDS", "OrtRunner", "Runner", "TorchRunner", "default_providers"]
