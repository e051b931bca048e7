"""Where the plugin tests run the ops: Triton kernels on DEVICE, the interpreter in a subprocess, and
ONNX Runtime on CPU with torch tensors in and out.

Triton tests run compiled on the GPU when there is one, else in the interpreter on CPU
(tests/conftest.py sets TRITON_INTERPRET=1 before any kernel module is imported when CUDA is absent;
with a GPU it does not, and the kernels then refuse CPU tensors). Tests generate their inputs on CPU
with a seeded generator and move them with ``.to(DEVICE)``, so both machines see the same numbers.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import torch

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_interpreted(script: str, timeout: float = 600) -> object:
    """Run ``script`` in a fresh Python with Triton's interpreter on and no GPU visible; return the
    JSON value the script prints on its last stdout line (the way GPU machines test the interpreter)."""
    env = dict(os.environ, TRITON_INTERPRET="1", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"interpreted run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def ort_run(session, feeds: dict[str, torch.Tensor]) -> torch.Tensor:
    """The first output of an ONNX Runtime ``session`` (CPU) for CPU torch ``feeds``, as a torch tensor.

    bfloat16 travels as raw 16-bit words (numpy has no bfloat16): inputs as OrtValues of ONNX type
    BFLOAT16, the output copied from ORT's own buffer.
    """
    import onnx
    import onnxruntime as ort

    binding = session.io_binding()
    for name, t in feeds.items():
        t = t.contiguous()
        if t.dtype == torch.bfloat16:
            bits = t.view(torch.int16).numpy().view(np.uint16)
            binding.bind_ortvalue_input(
                name, ort.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, onnx.TensorProto.BFLOAT16))
        else:
            binding.bind_cpu_input(name, t.numpy())
    binding.bind_output(session.get_outputs()[0].name)
    session.run_with_iobinding(binding)
    value = binding.get_outputs()[0]
    if value.data_type() != "tensor(bfloat16)":
        return torch.from_numpy(value.numpy())
    words = (ctypes.c_uint16 * math.prod(value.shape())).from_address(value.data_ptr())
    return torch.from_numpy(np.array(words, np.uint16).view(np.int16)).view(torch.bfloat16).reshape(value.shape())
