"""One interface for every backend: named numpy arrays in, named numpy arrays out.

As in Polygraphy, a runner does nothing expensive (no session, no GPU context) until
:meth:`Runner.activate`; subclasses implement ``activate_impl``/``infer_impl``/``deactivate_impl``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


class Runner:
    name = "runner"

    def __init__(self):
        self.is_active = False
        self.last_inference_time: float | None = None  # seconds, of the last infer() call

    def activate(self) -> Runner:
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
        return self

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.is_active:
            raise RuntimeError(f"{self.name}: call activate() (or use the runner as a context manager) first")
        start = time.perf_counter()
        out = self.infer_impl(feed)
        self.last_inference_time = time.perf_counter() - start
        return out

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def input_names(self) -> list[str]:
        raise NotImplementedError

    def device_timer(self, feed: dict[str, np.ndarray]) -> Callable[[], float] | None:
        """For runners on a GPU: a function that runs one inference on ``feed``, copied to the device
        once beforehand into buffers it reuses, and returns the milliseconds CUDA events measured
        around the computation alone. None for runners on the host (time ``infer`` with a clock)."""
        return None

    # --- for subclasses ---
    def activate_impl(self) -> None:
        pass

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        pass

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()


def cuda_event_timer(fn: Callable[[], object], stream=None) -> Callable[[], float]:
    """The clock of every :meth:`Runner.device_timer`: each call of the returned function runs ``fn()``
    between two CUDA events recorded on ``stream`` (a ``torch.cuda.Stream``; default: the current one)
    and returns the device milliseconds between them (no host copies, no allocation if ``fn`` has none)."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def run() -> float:
        start.record(stream)
        fn()
        end.record(stream)
        end.synchronize()
        return start.elapsed_time(end)

    return run
