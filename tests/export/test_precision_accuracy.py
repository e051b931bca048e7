"""CI guard of real accuracy: small trained models, FP16 and INT8 losses within the bounds of docs/accuracy.md.

The short version of ``make accuracy`` (``benchmarks.accuracy.run(quick=True)``): shorter training,
the same export/calibration/evaluation path. A family that fails to build, train or export fails here.
"""

from __future__ import annotations

import pytest

from benchmarks import accuracy

# Bounds (losses vs FP32 on held-out data), from the measurements in docs/accuracy.md.
BOUNDS = {
    "classifier": {"fp16": 0.5, "int8": 2.0},  # top-1 points (450 test digits: one image = 0.22 points)
    "swinir": {"fp16": 0.05, "int8": 0.5},  # PSNR dB
    "transformer": {"fp16": 1.0, "int8": 5.0},  # exact-match points (200 sequences: one = 0.5 points)
}


@pytest.mark.parametrize("family", ["vit", "swin", "nat", "swinir", "transformer"])
def test_precision_accuracy(family):
    (result,) = accuracy.run(quick=True, families=(family,), log=lambda *_: None)
    bounds = BOUNDS.get(family, BOUNDS["classifier"])
    v = result.values
    assert v["fp32"] > {"swinir": 20.0, "transformer": 10.0}.get(family, 60.0), f"training failed: {v}"
    for precision, bound in bounds.items():
        assert result.loss(precision) <= bound, f"{family} {precision}: {v} (bound {bound})"
    assert "black/saturated" not in result.notes, result.notes


def test_a_family_that_cannot_be_built_fails_the_run(monkeypatch):
    """The guard cannot turn into a skip: an error building a model reaches the caller."""
    import tdeploy.models

    def broken(*args, **kwargs):
        raise TypeError("unexpected config field")

    monkeypatch.setattr(tdeploy.models, "create_model", broken)
    with pytest.raises(TypeError, match="unexpected config field"):
        accuracy.run(quick=True, families=("vit",), log=lambda *_: None)
