"""What the runners time: host runners have no device timer; on a GPU, CUDA events around the compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tdeploy.runtime import TorchRunner


def _runner(device: str) -> TorchRunner:
    return TorchRunner(torch.nn.Linear(8, 4), ["x"], ["y"], device=device)


def test_host_runners_have_no_device_timer():
    with _runner("cpu") as runner:
        assert runner.device_timer({"x": np.ones((2, 8), np.float32)}) is None


@pytest.mark.gpu
def test_torch_on_cuda_is_timed_with_cuda_events():
    with _runner("cuda") as runner:
        timer = runner.device_timer({"x": np.ones((64, 8), np.float32)})
        times = [timer() for _ in range(3)]
    assert all(isinstance(t, float) and t > 0 for t in times)
