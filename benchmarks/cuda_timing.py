"""Timing GPU work: the median of CUDA-event intervals around single calls, after warm-up calls (the
first compiles Triton kernels); every benchmark on the GPU machine uses this one clock."""

from __future__ import annotations

import statistics


def cuda_median_ms(fn, iters: int = 20, warmup: int = 3) -> float:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)
