"""INT8 (Q/DQ) vs FP32 in ONNX Runtime on CPU: vit-s16 and swin-t, batch 1 and 8, interleaved.

Both artifacts are exported from the same seeded weights; the INT8 one is calibrated (max method, 8
samples: speed does not depend on the ranges) on scikit-image sample images. The two ONNX Runtime
sessions are timed in turns (fp32, int8, fp32, ...) so load changes on a shared machine hit both
alike. The ratio is FP32 median / INT8 median: > 1 means INT8 is faster. Reported as measured.
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = ("vit-s16", "swin-t")
BATCHES = (1, 8)


def _calib_folder(folder: Path) -> Path:
    import skimage.data
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "immunohistochemistry", "page"):
        try:
            img = getattr(skimage.data, name)()
        except Exception:
            continue
        Image.fromarray(img[..., :3] if img.ndim == 3 else img).save(folder / f"{name}.png")
    return folder


def _interleaved(runners: dict, feed: dict, warmup: int, iters: int) -> dict[str, float]:
    for _ in range(warmup):
        for r in runners.values():
            r.infer(feed)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(iters):
        for k, r in runners.items():
            start = time.perf_counter()
            r.infer(feed)
            times[k].append(time.perf_counter() - start)
    return {k: float(np.median(v)) * 1e3 for k, v in times.items()}


def run(threads: int = 2, models=MODELS, batches=BATCHES, warmup: int = 3, iters: int = 15) -> str:
    from tdeploy.export.onnx_export import ExportOptions, example_inputs, export
    from tdeploy.models import get_entry
    from tdeploy.runtime import OrtRunner

    rows = ["| model | batch | FP32 p50 ms | INT8 p50 ms | FP32 / INT8 |", "|---|---|---|---|---|"]
    notes = []
    with tempfile.TemporaryDirectory(prefix="tdeploy-bench-int8-") as tmp:
        calib = _calib_folder(Path(tmp) / "calib")
        for name in models:
            try:
                get_entry(name)
            except Exception as exc:
                notes.append(f"{name}: not benchmarked ({str(exc).splitlines()[0][:100]})")
                continue
            paths = {}
            for precision in ("fp32", "int8"):
                options = ExportOptions(precision=precision, calib=calib if precision == "int8" else None,
                                        calib_method="max", calib_samples=8, check=False)
                sidecar = export(name, Path(tmp) / f"{name}-{precision}", options=options)
                paths[precision] = Path(tmp) / f"{name}-{precision}" / sidecar.main.file
            spec = sidecar.main.export_spec()
            runners = {p: OrtRunner(path, threads=threads).activate() for p, path in paths.items()}
            try:
                for batch in batches:
                    feed = {i.name: t.numpy() for i, t in zip(spec.inputs, example_inputs(spec, batch=batch))}
                    t = _interleaved(runners, feed, warmup, iters)
                    rows.append(f"| {name} | {batch} | {t['fp32']:.1f} | {t['int8']:.1f} | {t['fp32'] / t['int8']:.2f}x |")
            finally:
                for r in runners.values():
                    r.deactivate()
    import onnxruntime

    head = (f"### INT8 (Q/DQ) vs FP32, ONNX Runtime {onnxruntime.__version__} CPU\n\n"
            f"{platform.processor() or platform.machine()}; {threads} threads; {warmup} warm-up + {iters} timed "
            "runs each, interleaved; median latency.\n\n")
    return head + "\n".join(rows) + "\n" + "".join(f"\n- {n}" for n in notes) + "\n"


if __name__ == "__main__":
    print(run())
