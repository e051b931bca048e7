"""Comparing a backend's outputs with the reference's: per-output error statistics and the tolerance test.

The one implementation used everywhere outputs are compared: export's ONNX Runtime check, ``deploy
validate`` (every backend, every case) and the task metric ``cosine``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tdeploy.artifact.spec import Tolerance


def cosine(got: np.ndarray, ref: np.ndarray) -> float:
    """Cosine similarity of the flattened arrays.

    When either side is all zeros the angle is undefined: 1.0 only when both are identical (both zero),
    else 0.0, so a dead backend that outputs zeros never looks like a match. With an inf or nan on
    either side it is nan (undefined), whichever non-finite value it is.
    """
    a, b = np.asarray(got, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else float(np.array_equal(a, b))


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

    def describe(self) -> str:
        """One phrase for error messages: ``logits: max abs error 0.0123 (tolerance 0.001 + 0.001 * |ref|)``."""
        return (f"{self.output}: max abs error {self.max_abs:.3g} (tolerance {self.atol:g} + {self.rtol:g} * |ref|, "
                f"{self.fraction_outside:.2%} of elements outside)")


def compare(output: str, got: np.ndarray, ref: np.ndarray, tol: Tolerance) -> OutputComparison:
    """Statistics of ``got`` against ``ref``; within tolerance when every element has
    |got - ref| <= atol + rtol * |ref| and ``got`` is finite everywhere."""
    if got.shape != ref.shape:
        raise ValueError(f"output {output!r}: backend shape {got.shape} != reference shape {ref.shape}")
    a = got.astype(np.float64).ravel()
    b = ref.astype(np.float64).ravel()
    diff = np.abs(a - b)
    outside = ~(diff <= tol.atol + tol.rtol * np.abs(b))  # NaN counts as outside
    finite = bool(np.all(np.isfinite(a)))
    return OutputComparison(
        output=output,
        shape=tuple(ref.shape),
        max_abs=float(diff.max()) if diff.size else 0.0,
        mean_abs=float(diff.mean()) if diff.size else 0.0,
        max_rel=float((diff / (np.abs(b) + 1e-6)).max()) if diff.size else 0.0,
        cosine=cosine(a, b),
        atol=tol.atol,
        rtol=tol.rtol,
        within_tolerance=finite and not bool(outside.any()),
        fraction_outside=float(outside.mean()) if diff.size else 0.0,
    )
