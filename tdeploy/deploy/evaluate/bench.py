"""``deploy bench``: latency percentiles and throughput of each backend, interleaved in one run.

Backends are timed in turns (torch, ort, torch, ort, ...) rather than one after another, so that a
change in machine load during the run affects them alike and the ratios stay honest on a shared
machine. The ratio of each backend is PyTorch eager's median latency divided by the backend's.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from tdeploy.artifact.folder import Artifact
from tdeploy.deploy.backends import make_runner
from tdeploy.export.onnx_export import build_model, example_inputs


@dataclass
class BenchRow:
    backend: str
    batch: int
    size: str
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput: float  # samples per second at the median latency
    speedup_vs_torch: float | None  # torch p50 / backend p50, same run
    gflops: float | None  # model GFLOPs per call (whole batch)
    gflops_per_s: float | None


@dataclass
class BenchReport:
    artifact: str
    variant: str
    precision: str
    threads: int
    iters: int
    warmup: int
    machine: str
    torch_version: str
    onnxruntime_version: str
    rows: list[BenchRow] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    def markdown(self) -> str:
        from tdeploy.deploy.evaluate.report import markdown_table

        head = ["backend", "batch", "size", "p50 ms", "p90 ms", "p99 ms", "samples/s", "vs torch", "GFLOPs",
                "GFLOP/s"]
        rows = [[r.backend, r.batch, r.size, r.p50_ms, r.p90_ms, r.p99_ms, r.throughput,
                 f"{r.speedup_vs_torch:.2f}x" if r.speedup_vs_torch else "-",
                 r.gflops if r.gflops is not None else "-", r.gflops_per_s if r.gflops_per_s is not None else "-"]
                for r in self.rows]
        return (
            f"### {self.variant} ({self.precision})\n\n"
            f"{self.machine}; {self.threads} threads; {self.warmup} warm-up + {self.iters} timed iterations "
            f"per backend, interleaved; torch {self.torch_version}, onnxruntime {self.onnxruntime_version}.\n\n"
            + markdown_table(head, rows)
            + "\n"
        )


def count_gflops(module: torch.nn.Module, args) -> float | None:
    """GFLOPs of one forward call (torch.utils.flop_counter: matmuls, convs, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(*args)
        return counter.get_total_flops() / 1e9
    except Exception:  # custom ops without a flop formula: report no number rather than a wrong one
        return None


def machine_description() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs"


def bench(
    artifact: Artifact,
    *,
    backends: list[str],
    batches: list[int],
    threads: int = 2,
    warmup: int = 5,
    iters: int = 30,
    size: tuple[int, int] | None = None,
    checkpoint: str | None = None,
    progress: bool = True,
) -> BenchReport:
    import onnxruntime as ort
    from tqdm import tqdm

    sc = artifact.sidecar
    spec = sc.main.export_spec()
    model = build_model(sc.variant, checkpoint or (sc.checkpoint if sc.checkpoint and _exists(sc.checkpoint) else None),
                        sc.overrides)
    report = BenchReport(str(artifact.root), sc.variant, sc.precision, threads, iters, warmup,
                         machine_description(), torch.__version__, ort.__version__)
    order = ["torch", *[b for b in backends if b != "torch"]]
    runners = {b: make_runner(b, artifact, threads=threads, torch_module=model) for b in order}
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    total = len(batches) * (warmup + iters) * len(order)
    bar = tqdm(total=total, desc=f"bench {sc.variant}", unit="run", disable=None if progress else True, leave=False)
    try:
        for r in runners.values():
            r.activate()
        for batch in batches:
            tensors = example_inputs(spec, size, seed=0, batch=batch)
            feed = {i.name: t.numpy() for i, t in zip(spec.inputs, tensors)}
            gflops = count_gflops(model, tensors)
            times: dict[str, list[float]] = {b: [] for b in order}
            for step in range(warmup + iters):
                for backend, runner in runners.items():
                    start = time.perf_counter()
                    runner.infer(feed)
                    elapsed = time.perf_counter() - start
                    if step >= warmup:
                        times[backend].append(elapsed)
                    bar.update()
            image = next((i for i in spec.inputs if i.kind == "image"), None)
            hw = tuple(feed[image.name].shape[-2:]) if image else None
            torch_p50 = float(np.median(times["torch"]))
            for backend in order:
                if backend == "torch" and "torch" not in backends:
                    continue
                t = np.array(times[backend]) * 1e3
                p50 = float(np.percentile(t, 50))
                report.rows.append(BenchRow(
                    backend=backend, batch=batch, size=f"{hw[0]}x{hw[1]}" if hw else "-",
                    p50_ms=p50, p90_ms=float(np.percentile(t, 90)), p99_ms=float(np.percentile(t, 99)),
                    mean_ms=float(t.mean()), throughput=batch / (p50 / 1e3),
                    speedup_vs_torch=torch_p50 * 1e3 / p50,
                    gflops=gflops, gflops_per_s=gflops / (p50 / 1e3) if gflops else None,
                ))
    finally:
        bar.close()
        for r in runners.values():
            r.deactivate()
        torch.set_num_threads(saved_threads)
    return report


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_file()
