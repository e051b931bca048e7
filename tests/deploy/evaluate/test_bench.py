"""deploy bench's measurements: attention FLOPs counted, the baseline row, seq2seq generation."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def test_bench_counts_attention_flops_of_a_model():
    """A Swin model's GFLOPs through bench's counter include its window attention."""
    from tdeploy.deploy.evaluate.bench import count_gflops
    from tdeploy.models import create_model

    model = create_model("swin-t", depths=(2, 1, 1, 1), embed_dim=32, num_heads=(1, 2, 4, 8)).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad(), FlopCounterMode(display=False) as plain:
        model(x)
    without = plain.get_total_flops() / 1e9
    # Stage 1 alone: 2 blocks x 64 windows x 4 * 49^2 * 32 FLOPs of attention.
    assert count_gflops(model, x) - without >= 2 * 64 * 4 * 49**2 * 32 / 1e9
