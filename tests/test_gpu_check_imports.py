"""`make gpu-check` runs on the lent GPU machine with its own python, where nothing can be installed: torch,
Triton, onnx, onnxscript and a CPU onnxruntime are there (the device library's package list), TensorRT,
TensorRT-RTX, Polygraphy, natten and spandrel are not. Every module it runs must import without those,
which is checked here, on CPU, by hiding them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.gpu_check import OPS

ROOT = Path(__file__).resolve().parents[1]
ABSENT_ON_THE_GPU_MACHINE = ("tensorrt", "tensorrt_rtx", "polygraphy", "natten", "spandrel")


def test_gpu_check_imports_with_what_the_gpu_machine_has():
    modules = ["benchmarks.gpu_check", "benchmarks.cuda_timing", *OPS.values()]
    code = (f"import sys\nfor m in {ABSENT_ON_THE_GPU_MACHINE!r}: sys.modules[m] = None\n"
            + "".join(f"import {m}\n" for m in modules))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
