"""CI guard of real accuracy: small trained models, FP16 and INT8 losses within the bounds of docs/accuracy.md.

The short version of ``make accuracy`` (``benchmarks.accuracy.run(quick=True)``): shorter training,
the same export/calibration/evaluation path. Families not importable yet are skipped.
"""

from __future__ import annotations

import pytest

accuracy = pytest.importorskip("benchmarks.accuracy")
pytest.importorskip("sklearn")
pytest.importorskip("skimage")

# Bounds (losses vs FP32 on held-out data), from the measurements in docs/accuracy.md.
BOUNDS = {
    "classifier": {"fp16": 0.5, "int8": 2.0},  # top-1 points (450 test digits: one image = 0.22 points)
    "swinir": {"fp16": 0.05, "int8": 0.5},  # PSNR dB
    "transformer": {"fp16": 1.0, "int8": 5.0},  # exact-match points (200 sequences: one = 0.5 points)
}


@pytest.mark.parametrize("family", ["vit", "swin", "nat", "swinir", "transformer"])
def test_precision_accuracy(family):
    (result,) = accuracy.run(quick=True, families=(family,), log=lambda *_: None)
    if result.skipped:
        pytest.skip(f"{family}: {result.skipped}")
    bounds = BOUNDS.get(family, BOUNDS["classifier"])
    v = result.values
    assert v["fp32"] > {"swinir": 20.0, "transformer": 10.0}.get(family, 60.0), f"training failed: {v}"
    for precision, bound in bounds.items():
        assert result.loss(precision) <= bound, f"{family} {precision}: {v} (bound {bound})"
    assert "black/saturated" not in result.notes, result.notes
