"""The attention ops' FLOP formulas (bench's GFLOPs) against what torch's counter sees in the references."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tdeploy.plugins.neighborhood_attention import PLUGIN_OP as NA
from tdeploy.plugins.neighborhood_attention import neighborhood_attention, neighborhood_attention_reference
from tdeploy.plugins.window_attention import PLUGIN_OP as WA
from tdeploy.plugins.window_attention import window_attention, window_attention_reference


def counted(fn, mapping=None) -> int:
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping or {}) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("windows, n, heads, head_dim, masked", [(6, 49, 4, 16, True), (1, 16, 1, 8, False),
                                                                  (8, 144, 6, 32, True), (3, 64, 2, 24, False)])
def test_window_attention_formula(windows, n, heads, head_dim, masked):
    qkv = torch.randn(windows, n, 3 * heads * head_dim)
    bias = torch.randn(heads, n, n)
    mask = torch.randn(2 if windows % 2 == 0 else 1, n, n) if masked else None
    want = counted(lambda: window_attention_reference(qkv, bias, mask, heads, head_dim**-0.5))
    got = counted(lambda: window_attention(qkv, bias, mask, num_heads=heads, backend="reference"),
                  {WA.torch_op.overloadpacket: WA.flops})
    assert want > 0 and got == want
    # Without the formula the counter sees nothing inside the op: that is why the op carries one.
    assert counted(lambda: window_attention(qkv, bias, mask, num_heads=heads, backend="reference")) == 0


@pytest.mark.parametrize("b, h, w, heads, head_dim, k, dilation, rpb",
                         [(2, 14, 15, 2, 16, 7, 2, True), (1, 5, 6, 1, 16, 7, 1, False),
                          (1, 9, 9, 4, 32, 5, 3, True), (3, 8, 8, 3, 8, 3, 1, False)])
def test_neighborhood_attention_formula(b, h, w, heads, head_dim, k, dilation, rpb):
    qkv = torch.randn(b, h, w, 3 * heads * head_dim)
    table = torch.randn(heads, 2 * k - 1, 2 * k - 1) if rpb else None
    kw = dict(num_heads=heads, kernel_size=k, dilation=dilation)
    want = counted(lambda: neighborhood_attention_reference(qkv, table, scale=head_dim**-0.5, **kw))
    got = counted(lambda: neighborhood_attention(qkv, table, backend="reference", **kw),
                  {NA.torch_op.overloadpacket: NA.flops})
    assert want > 0 and got == want
