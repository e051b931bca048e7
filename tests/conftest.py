"""Shared test set-up.

timm (and spandrel) import torchvision at import time. On a CPU-only torch from this machine's disk,
PyPI's torchvision wheel cannot load its C++ ops (they link CUDA torch), and its pure-Python part
then fails registering fake kernels for ``torchvision::nms``/``qnms``. Declaring those two schemas
first lets the pure-Python part import; the models we compare against never call those ops.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch


def _declare_missing_torchvision_ops() -> None:
    if importlib.util.find_spec("torchvision") is None:
        return
    try:
        torch.ops.torchvision.nms  # noqa: B018 - loaded fine: nothing to do
        return
    except (AttributeError, RuntimeError):
        pass
    try:
        import torchvision  # noqa: F401
        return
    except RuntimeError:
        pass
    lib = torch.library.Library("torchvision", "FRAGMENT")  # noqa: TID251
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _declare_missing_torchvision_ops.lib = lib  # keep the fragment alive


_declare_missing_torchvision_ops()

# Without a GPU, Triton kernels run in Triton's interpreter. @triton.jit reads this variable when a
# kernel module is imported, so it must be set before any tdeploy plugin is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _has_tensorrt() -> str | None:
    """None when TensorRT and a GPU are usable, else the reason why not."""
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (pip install tensorrt on a machine with an NVIDIA GPU)"
    if not torch.cuda.is_available():
        return "no CUDA GPU visible"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _has_tensorrt()
    if reason is not None:
        skip = pytest.mark.skip(reason=f"trt: {reason}")
        for item in items:
            if "trt" in item.keywords:
                item.add_marker(skip)
    if not torch.cuda.is_available():
        skip_gpu = pytest.mark.skip(reason="gpu: no CUDA GPU visible")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
