"""Both plugin ops train: their gradients equal those of the reference math."""

from __future__ import annotations

import torch

from tdeploy.plugins.neighborhood_attention import neighborhood_attention, neighborhood_attention_reference
from tdeploy.plugins.window_attention import window_attention
from tdeploy.plugins.window_attention.reference import window_attention_reference


def _grads(fn, *tensors):
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    return [leaf.grad for leaf in leaves]


def test_window_attention_gradients_equal_reference():
    qkv, bias, mask = torch.randn(6, 49, 3 * 64), torch.randn(2, 49, 49), torch.randn(3, 49, 49)
    got = _grads(lambda q, b, m: window_attention(q, b, m, num_heads=2), qkv, bias, mask)
    want = _grads(lambda q, b, m: window_attention_reference(q, b, m, 2, 32**-0.5), qkv, bias, mask)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_neighborhood_attention_gradients_equal_reference():
    qkv, rpb = torch.randn(2, 9, 11, 3 * 32), torch.randn(2, 5, 5)
    got = _grads(lambda q, r: neighborhood_attention(q, r, num_heads=2, kernel_size=3, dilation=2), qkv, rpb)
    want = _grads(lambda q, r: neighborhood_attention_reference(q, r, num_heads=2, kernel_size=3, dilation=2,
                                                                scale=16**-0.5), qkv, rpb)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
