"""The one output comparison (export's check, validate, the cosine metric)."""

from __future__ import annotations

import numpy as np
import pytest

from tdeploy.artifact.spec import Tolerance
from tdeploy.deploy.evaluate.metrics import METRICS
from tdeploy.runtime.compare import compare, cosine


def test_within_and_outside_tolerance():
    ref = np.linspace(-1, 1, 101, dtype=np.float32)
    ok = compare("y", ref + 1e-4, ref, Tolerance(atol=2e-4))
    assert ok.within_tolerance and ok.fraction_outside == 0.0 and ok.max_abs == pytest.approx(1e-4, rel=1e-3)
    bad = ref.copy()
    bad[7] += 0.5
    result = compare("y", bad, ref, Tolerance(atol=1e-3))
    assert not result.within_tolerance and result.fraction_outside == pytest.approx(1 / 101)
    assert "max abs error 0.5" in result.describe()


def test_non_finite_outputs_fail():
    ref = np.ones(4, np.float32)
    for poison in (np.nan, np.inf):
        got = ref.copy()
        got[2] = poison
        result = compare("y", got, ref, Tolerance(atol=1.0))
        assert not result.within_tolerance and np.isnan(result.cosine)


def test_a_dead_backend_is_not_a_match():
    """All zeros against a non-zero reference: cosine 0, never 1 (the metric uses the same function)."""
    ref = np.arange(1, 9, dtype=np.float32)
    zeros = np.zeros_like(ref)
    assert cosine(zeros, ref) == 0.0 and METRICS["cosine"](zeros, ref) == 0.0
    assert compare("y", zeros, ref, Tolerance(atol=1e-3)).cosine == 0.0
    assert cosine(zeros, zeros) == 1.0
    assert cosine(ref, ref) == pytest.approx(1.0)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        compare("y", np.zeros(3), np.zeros(4), Tolerance(atol=1.0))
