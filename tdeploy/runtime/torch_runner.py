"""PyTorch eager as a runner (the reference every other backend is compared with)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tdeploy.runtime.base import Runner, cuda_event_timer


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, module: nn.Module, input_names: list[str], output_names: list[str],
                 device: str = "cpu", threads: int | None = None):
        super().__init__()
        self.module = module
        self._inputs = list(input_names)
        self._outputs = list(output_names)
        self.device = device
        self.threads = threads
        self._saved_threads: int | None = None

    def input_names(self) -> list[str]:
        return self._inputs

    def activate_impl(self) -> None:
        if self.threads:
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        self.module = self.module.to(self.device).eval()

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(feed[n])).to(self.device) for n in self._inputs]
        with torch.inference_mode():
            out = self.module(*args)
        if isinstance(out, dict):
            out = [out[n] for n in self._outputs]
        elif not isinstance(out, (tuple, list)):
            out = [out]
        return {n: t.detach().cpu().numpy() for n, t in zip(self._outputs, out)}

    def device_timer(self, feed: dict[str, np.ndarray]):
        if not str(self.device).startswith("cuda"):
            return None
        args = [torch.from_numpy(np.ascontiguousarray(feed[n])).to(self.device) for n in self._inputs]

        def forward() -> None:
            with torch.inference_mode():
                self.module(*args)

        return cuda_event_timer(forward)

    def deactivate_impl(self) -> None:
        if self._saved_threads is not None:
            torch.set_num_threads(self._saved_threads)
