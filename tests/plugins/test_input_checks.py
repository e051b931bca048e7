"""What both ops take: dtypes and devices, checked in one line before any backend runs."""

from __future__ import annotations

import pytest
import torch

from tdeploy.errors import BackendUnavailable, TdeployError
from tdeploy.plugins.neighborhood_attention import neighborhood_attention
from tdeploy.plugins.window_attention import window_attention


def wa(qkv, bias, mask=None, **kw):
    return window_attention(qkv, bias, mask, num_heads=2, **kw)


def na(qkv, rpb=None, **kw):
    return neighborhood_attention(qkv, rpb, num_heads=2, kernel_size=3, **kw)


@pytest.mark.parametrize("call, match", [
    (lambda: wa(torch.zeros(2, 4, 12, dtype=torch.int32), torch.zeros(2, 4, 4)), "qkv dtype torch.int32"),
    (lambda: wa(torch.zeros(2, 4, 12), torch.zeros(2, 4, 4, dtype=torch.int64)), "bias must be a floating-point"),
    (lambda: wa(torch.zeros(2, 4, 12), torch.zeros(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool)),
     "mask must be a floating-point"),
    (lambda: wa(torch.zeros(2, 4, 12), torch.zeros(2, 4, 4, device="meta")), "bias is on meta but qkv on cpu"),
    (lambda: wa(torch.zeros(2, 4, 12), torch.zeros(2, 4, 4), torch.zeros(1, 4, 4, device="meta")),
     "mask is on meta but qkv on cpu"),
    (lambda: na(torch.zeros(1, 5, 5, 12, dtype=torch.int32)), "qkv dtype torch.int32"),
    (lambda: na(torch.zeros(1, 5, 5, 12), torch.zeros(2, 5, 5, dtype=torch.int64)), "rpb must be a floating-point"),
    (lambda: na(torch.zeros(1, 5, 5, 12), torch.zeros(2, 5, 5, device="meta")), "rpb is on meta but qkv on cpu"),
])
def test_bad_inputs_are_one_line(call, match):
    with pytest.raises(TdeployError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_float64_runs_on_the_reference_only():
    """float64 (gradient checks) is computed in float64 by the reference; the kernels say they do not take it."""
    qkv = torch.randn(2, 4, 12, dtype=torch.float64)
    out = wa(qkv, torch.randn(2, 4, 4, dtype=torch.float64))
    assert out.dtype == torch.float64
    grid = torch.randn(1, 5, 5, 12, dtype=torch.float64)
    assert na(grid).dtype == torch.float64
    for call in (lambda: wa(qkv, torch.zeros(2, 4, 4, dtype=torch.float64), backend="triton"),
                 lambda: na(grid, backend="triton")):
        with pytest.raises(BackendUnavailable, match="torch.float64 runs on the reference backend only"):
            call()
