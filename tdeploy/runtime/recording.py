"""A runner that keeps what it ran: every feed and the outputs it gave (Polygraphy's inputs/outputs files)."""

from __future__ import annotations

import numpy as np

from tdeploy.runtime.base import Runner


class RecordingRunner(Runner):
    """Runs ``inner`` and appends each ``(feed, outputs)`` pair to :attr:`records`, in call order."""

    def __init__(self, inner: Runner):
        super().__init__()
        self.inner = inner
        self.name = inner.name
        self.records: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []

    def input_names(self) -> list[str]:
        return self.inner.input_names()

    def activate_impl(self) -> None:
        self.inner.activate()

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.inner.infer(feed)
        self.records.append(({k: np.array(v, copy=True) for k, v in feed.items()}, out))
        return out

    def deactivate_impl(self) -> None:
        self.inner.deactivate()
