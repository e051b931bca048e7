"""Per-output error statistics of a backend against the PyTorch reference."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tdeploy.models.spec import Tolerance


@dataclass
class OutputComparison:
    output: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    max_rel: float  # max |a - b| / (|b| + 1e-6): large where the reference is near zero
    cosine: float  # cosine similarity of the flattened outputs
    atol: float
    rtol: float
    within_tolerance: bool
    fraction_outside: float  # elements with |a - b| > atol + rtol * |b|

    def to_json(self) -> dict:
        return asdict(self)


def compare(output: str, got: np.ndarray, ref: np.ndarray, tol: Tolerance) -> OutputComparison:
    if got.shape != ref.shape:
        raise ValueError(f"output {output!r}: backend shape {got.shape} != reference shape {ref.shape}")
    a = got.astype(np.float64).ravel()
    b = ref.astype(np.float64).ravel()
    diff = np.abs(a - b)
    outside = diff > tol.atol + tol.rtol * np.abs(b)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    cosine = float(a @ b / denom) if denom > 0 else float(np.array_equal(a, b))
    finite = bool(np.all(np.isfinite(a)))
    return OutputComparison(
        output=output,
        shape=tuple(ref.shape),
        max_abs=float(diff.max()) if diff.size else 0.0,
        mean_abs=float(diff.mean()) if diff.size else 0.0,
        max_rel=float((diff / (np.abs(b) + 1e-6)).max()) if diff.size else 0.0,
        cosine=cosine,
        atol=tol.atol,
        rtol=tol.rtol,
        within_tolerance=finite and not bool(outside.any()),
        fraction_outside=float(outside.mean()) if diff.size else 0.0,
    )
