"""transformer-base greedy decoding tokens/s: ONNX Runtime with the KV cache vs PyTorch eager with and
without it (issue goal: ORT with cache >= 1.5x PyTorch eager with cache).

Random (seeded) weights, source length 32, exactly 32 new tokens per sequence (no early EOS), batch 1
and 8. Each timed call is a whole generation (encoder once + 32 decoder steps + the search loop, which
is the same numpy code for every backend). Backends are timed in turns, so load changes on a shared
machine hit them alike.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from tdeploy.artifact.folder import open_artifact
from tdeploy.deploy.evaluate.bench import machine_description
from tdeploy.deploy.evaluate.report import markdown_table
from tdeploy.deploy.tasks.generation import (
    GenerationConfig,
    TorchCachedStep,
    TorchRecomputeStep,
    generate,
    runner_step,
)
from tdeploy.export import ExportOptions, export
from tdeploy.export.onnx_export import build_model

ARTIFACT = Path("artifacts/bench/transformer-base")
VARIANT = "transformer-base"
SRC_LEN = 32
NEW_TOKENS = 32


def run(threads: int = 2, batches=(1, 8), reps: int = 4, warmup: int = 1) -> str:
    model = build_model(VARIANT, None, {})
    export(VARIANT, ARTIFACT, options=ExportOptions(), model=model)
    return measure(model, threads, batches, reps, warmup)


def measure(model, threads: int, batches=(1, 8), reps: int = 4, warmup: int = 1) -> str:
    """The table for an already exported ARTIFACT of ``model``."""
    extra = open_artifact(ARTIFACT).sidecar.graphs["encoder"].export_spec().extra
    cfg = GenerationConfig(bos_id=extra["bos_id"], eos_id=None, pad_id=extra["pad_id"], max_new_tokens=NEW_TOKENS)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    ort_step = runner_step(open_artifact(ARTIFACT), "ort", threads=threads)
    steps = {"torch eager, no cache": TorchRecomputeStep(model), "torch eager, KV cache": TorchCachedStep(model),
             "ort, KV cache": ort_step}
    rows = []
    try:
        ort_step.encoder.activate()
        ort_step.decoder.activate()
        for batch in batches:
            src = np.random.default_rng(batch).integers(4, extra["src_vocab_size"], (batch, SRC_LEN))
            mask = np.zeros_like(src, dtype=bool)
            outputs, times = {}, {name: [] for name in steps}
            for rep in range(warmup + reps):
                for name, step in steps.items():
                    start = time.perf_counter()
                    outputs[name] = generate(step, src, mask, cfg).tokens
                    if rep >= warmup:
                        times[name].append(time.perf_counter() - start)
            same = all(np.array_equal(o, outputs["torch eager, KV cache"]) for o in outputs.values())
            base = float(np.median(times["torch eager, KV cache"]))
            for name, ts in times.items():
                med = float(np.median(ts))
                rows.append([name, batch, NEW_TOKENS, med * 1e3, batch * NEW_TOKENS / med, f"{base / med:.2f}x",
                             "yes" if same else "NO"])
    finally:
        ort_step.encoder.deactivate()
        ort_step.decoder.deactivate()
        torch.set_num_threads(saved)
    head = ["backend", "batch", "new tokens", "median ms / generation", "tokens/s", "vs torch + cache",
            "same tokens"]
    return (f"### {VARIANT} greedy decoding (random weights, source {SRC_LEN}, {NEW_TOKENS} new tokens)\n\n"
            f"{machine_description()}; {threads} threads; {warmup} warm-up + {reps} timed generations per backend, "
            f"interleaved; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; load average "
            f"{os.getloadavg()[0]:.1f} at the end (other jobs on the machine slow PyTorch's multi-threaded small "
            "ops most).\n\n"
            + markdown_table(head, rows) + "\n")


if __name__ == "__main__":
    import sys

    print(run(threads=int(sys.argv[1]) if len(sys.argv) > 1 else 2))
