"""Timing GPU work: the median of CUDA-event intervals around single calls, after warm-up calls (the
first compiles Triton kernels); every benchmark on the GPU machine uses this one clock."""

from __future__ import annotations

import statistics

from tdeploy.runtime.base import cuda_event_timer


def cuda_median_ms(fn, iters: int = 20, warmup: int = 3) -> float:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    timed = cuda_event_timer(fn)  # the runners' device clock
    return statistics.median([timed() for _ in range(iters)])
