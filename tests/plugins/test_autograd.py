"""Both plugin ops train: the backward they register (plugins/autograd.py) against finite differences.

``torch.autograd.gradcheck`` in float64 compares the analytical gradients with numerical ones of the
forward, so the check does not trust the backward's own definition (autograd of the reference).
"""

from __future__ import annotations

import pytest
import torch

import tdeploy.plugins  # noqa: F401 - registers torch.ops.tdeploy.*
from tdeploy.plugins.window_attention import window_attention


def _f64(*shapes, seed: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True) for s in shapes]


@pytest.mark.parametrize("masked", [True, False], ids=["mask", "nomask"])
def test_window_attention_gradients(masked):
    # qkv (windows=4, N=9, 3 * heads * head_dim = 3 * 2 * 4), bias (heads, N, N), mask (nW=2, N, N)
    qkv, bias, mask = _f64((4, 9, 24), (2, 9, 9), (2, 9, 9), seed=1)

    def f(q, b, m):
        return window_attention(q, b, m if masked else None, num_heads=2, scale=0.7, backend="reference")

    assert torch.autograd.gradcheck(f, (qkv, bias, mask), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("kernel_size, dilation, rpb", [(3, 1, True), (3, 2, True), (5, 1, False)])
def test_neighborhood_attention_gradients(kernel_size, dilation, rpb):
    # qkv (B=1, H=5, W=6, 3 * heads * head_dim = 3 * 2 * 3); maps smaller than k * dilation are padded
    qkv, table = _f64((1, 5, 6, 18), (2, 2 * kernel_size - 1, 2 * kernel_size - 1), seed=2)

    def f(q, r):  # the custom op itself: the public function takes float32/16/bf16 only
        return torch.ops.tdeploy.neighborhood_attention(q, r if rpb else None, 2, kernel_size, dilation, 0.6,
                                                        "reference")

    assert torch.autograd.gradcheck(f, (qkv, table), eps=1e-6, atol=1e-7, rtol=1e-5)
