"""``deploy bench``: latency percentiles and throughput of each backend, interleaved in one run.

Backends are timed in turns (torch, ort, torch, ort, ...) rather than one after another, so that a
change in machine load during the run affects them alike and the ratios stay honest on a shared
machine. The ratio of each backend is PyTorch eager's median latency divided by the backend's.

What is timed, per row (``timing``): on the host (PyTorch and ONNX Runtime on CPU) the wall clock
around one inference, numpy in and out; on a GPU (TensorRT, and PyTorch as its baseline, which then
runs on the same GPU) CUDA events around the computation alone, on inputs copied to the device once.
Seq2seq artifacts are timed per generation: encoder once, then a fixed number of decoder steps with
the KV cache (no early stop), on the host clock.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from tdeploy.artifact.folder import Artifact
from tdeploy.deploy.backends import make_runner
from tdeploy.deploy.reference import reference_model, weights_description
from tdeploy.export.onnx_export import example_inputs

TIMINGS = {"wall clock": "host clock, one inference incl. copies",
           "cuda events": "CUDA events, compute only",
           "generation": "host clock, one whole generation"}


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
    speedup_vs_torch: float | None  # torch p50 / backend p50, same run (None on the torch row: the baseline)
    gflops: float | None  # model GFLOPs per call (whole batch)
    gflops_per_s: float | None
    timing: str = "wall clock"  # what was timed (TIMINGS)


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
    weights: str = ""  # a checkpoint, or seeded random weights (the timings hold either way)
    rows: list[BenchRow] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    def markdown(self) -> str:
        from tdeploy.deploy.evaluate.report import markdown_table

        head = ["backend", "batch", "size", "p50 ms", "p90 ms", "p99 ms", "samples/s", "vs torch", "GFLOPs",
                "GFLOP/s", "timed"]
        rows = [[r.backend, r.batch, r.size, r.p50_ms, r.p90_ms, r.p99_ms, r.throughput,
                 f"{r.speedup_vs_torch:.2f}x" if r.speedup_vs_torch else "baseline",
                 r.gflops if r.gflops is not None else "-", r.gflops_per_s if r.gflops_per_s is not None else "-",
                 TIMINGS[r.timing]]
                for r in self.rows]
        return (
            f"### {self.variant} ({self.precision})\n\n"
            f"{self.machine}; {self.threads} threads; {self.warmup} warm-up + {self.iters} timed iterations "
            f"per backend, interleaved; torch {self.torch_version}, onnxruntime {self.onnxruntime_version}; "
            f"weights: {self.weights or 'not recorded'}.\n\n"
            + markdown_table(head, rows)
            + "\n"
        )


def count_gflops(fn, *args) -> float:
    """GFLOPs of ``fn(*args)`` (torch.utils.flop_counter: matmuls, convs, attention, and tdeploy's
    attention ops by their formulas, which the counter cannot see into)."""
    from torch.utils.flop_counter import FlopCounterMode

    from tdeploy.plugins.registry import plugin_ops

    mapping = {op.torch_op.overloadpacket: op.flops for op in plugin_ops()}
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn(*args)
    return counter.get_total_flops() / 1e9


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
    new_tokens: int = 16,
    progress: bool = True,
) -> BenchReport:
    """Time ``backends`` (and PyTorch eager, the baseline) on ``artifact`` at each batch size."""
    import onnxruntime as ort

    sc = artifact.sidecar
    model = reference_model(sc, checkpoint)  # refuses when the artifact's checkpoint is gone, as validate does
    report = BenchReport(str(artifact.root), sc.variant, sc.precision, threads, iters, warmup,
                         machine_description(), torch.__version__, ort.__version__,
                         weights=weights_description(sc, checkpoint))
    order = ["torch", *[b for b in backends if b != "torch"]]
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if sc.main.export_spec().task == "seq2seq":
            _bench_generation(artifact, model, order, batches, threads, warmup, iters, new_tokens, report, progress)
        else:
            _bench_graph(artifact, model, order, batches, threads, warmup, iters, size, report, progress)
    finally:
        torch.set_num_threads(saved_threads)
    if "torch" not in backends:
        report.rows = [r for r in report.rows if r.backend != "torch"]
    return report


def _interleaved(timers: dict[str, object], warmup: int, iters: int, bar) -> dict[str, np.ndarray]:
    """Milliseconds of ``iters`` timed calls of each timer, taken in turns after ``warmup`` untimed ones."""
    times: dict[str, list[float]] = {b: [] for b in timers}
    for step in range(warmup + iters):
        for backend, timer in timers.items():
            ms = timer()
            if step >= warmup:
                times[backend].append(ms)
            bar.update()
    return {b: np.asarray(t) for b, t in times.items()}


def _wall_clock(fn):
    def timer() -> float:
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3

    return timer


def _rows(report: BenchReport, times: dict[str, np.ndarray], batch: int, size: str, gflops: float | None,
          timing: dict[str, str]) -> None:
    torch_p50 = float(np.percentile(times["torch"], 50))
    for backend, t in times.items():
        p50 = float(np.percentile(t, 50))
        report.rows.append(BenchRow(
            backend=backend, batch=batch, size=size,
            p50_ms=p50, p90_ms=float(np.percentile(t, 90)), p99_ms=float(np.percentile(t, 99)),
            mean_ms=float(t.mean()), throughput=batch / (p50 / 1e3),
            speedup_vs_torch=None if backend == "torch" else torch_p50 / p50,
            gflops=gflops, gflops_per_s=gflops / (p50 / 1e3) if gflops else None, timing=timing[backend],
        ))


def _bench_graph(artifact, model, order, batches, threads, warmup, iters, size, report, progress) -> None:
    from tqdm import tqdm

    sc = artifact.sidecar
    spec = sc.main.export_spec()
    # PyTorch runs where the fastest other backend runs: on the GPU when TensorRT is timed.
    device = "cuda" if "trt" in order and torch.cuda.is_available() else "cpu"
    runners = {b: make_runner(b, artifact, threads=threads, torch_module=model, device=device) for b in order}
    bar = tqdm(total=len(batches) * (warmup + iters) * len(order), desc=f"bench {sc.variant}", unit="run",
               disable=None if progress else True, leave=False)
    try:
        for backend in reversed(order):  # TensorRT first: its one-line refusal before PyTorch moves to a GPU
            runners[backend].activate()
        for batch in batches:
            tensors = example_inputs(spec, size, seed=0, batch=batch)
            feed = {i.name: t.numpy() for i, t in zip(spec.inputs, tensors)}
            gflops = count_gflops(model, *[t.to(device) for t in tensors])
            timers, timing = {}, {}
            for backend, runner in runners.items():
                device_timer = runner.device_timer(feed)
                timers[backend] = device_timer or _wall_clock(lambda r=runner, f=feed: r.infer(f))
                timing[backend] = "cuda events" if device_timer else "wall clock"
            times = _interleaved(timers, warmup, iters, bar)
            image = next((i for i in spec.inputs if i.kind == "image"), None)
            hw = tuple(feed[image.name].shape[-2:]) if image else None
            _rows(report, times, batch, f"{hw[0]}x{hw[1]}" if hw else "-", gflops, timing)
    finally:
        bar.close()
        for r in runners.values():
            r.deactivate()


def _bench_generation(artifact, model, order, batches, threads, warmup, iters, new_tokens, report, progress) -> None:
    """One row per backend and batch: a greedy generation of ``new_tokens`` tokens from full-length
    seeded sources, PyTorch with its KV cache (TorchCachedStep) as the baseline."""
    from tqdm import tqdm

    from tdeploy.deploy.tasks.generation import (
        GenerationConfig,
        TorchCachedStep,
        generate,
        runner_step,
        seq2seq_extra,
    )

    extra = seq2seq_extra(artifact)
    cfg = GenerationConfig.from_extra(extra, max_new_tokens=min(new_tokens, extra["max_len"]))
    cfg = GenerationConfig(cfg.bos_id, None, cfg.pad_id, cfg.max_new_tokens)  # no early stop: equal work
    enc_spec = artifact.sidecar.graphs["encoder"].export_spec()
    src_input = enc_spec.input("src_tokens")
    steps = {b: TorchCachedStep(model) if b == "torch" else runner_step(artifact, b, threads=threads)
             for b in order}
    bar = tqdm(total=len(batches) * (warmup + iters) * len(order), desc=f"bench {artifact.sidecar.variant}",
               unit="run", disable=None if progress else True, leave=False)
    runners = [r for s in steps.values() if not isinstance(s, TorchCachedStep) for r in (s.encoder, s.decoder)]
    try:
        for r in runners:
            r.activate()
        for batch in batches:
            S = int(src_input.example[1])
            rng = np.random.default_rng(0)
            src = rng.integers(int(src_input.low), int(src_input.high), size=(batch, S), dtype=np.int64)
            mask = np.zeros((batch, S), dtype=bool)
            gflops = count_gflops(generate, TorchCachedStep(model), src, mask, cfg)
            timers = {b: _wall_clock(lambda s=step, x=src, m=mask: generate(s, x, m, cfg)) for b, step in steps.items()}
            times = _interleaved(timers, warmup, iters, bar)
            _rows(report, times, batch, f"S={S}, {cfg.max_new_tokens} tokens", gflops,
                  dict.fromkeys(steps, "generation"))
    finally:
        bar.close()
        for r in runners:
            r.deactivate()
