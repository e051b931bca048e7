"""Which backend computes a plugin op, and exactly why another one cannot (as NATTEN's backend checks).

Every op takes ``backend=None | "reference" | "triton"``. ``None`` picks Triton for CUDA tensors when it
can run there, else the PyTorch reference; a backend asked for by name either runs or raises
:class:`BackendUnavailable` with the one reason. Each op's ``op.py`` has a ``backend_problem(backend,
...)`` that returns that reason (None: it can run) from the checks below plus the op's own limits.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable

import torch

from tdeploy.errors import BackendUnavailable, TdeployError

BACKENDS = ("reference", "triton")
TRITON_HINT = "pip install 'tdeploy[triton]'"
# What the ops take: float64 runs on the reference backend only (gradient checks); the kernels take the rest.
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def dtype_problem(dtype: torch.dtype) -> str | None:
    """None when the Triton kernels take ``dtype``, else why not."""
    if dtype in TRITON_DTYPES:
        return None
    return f"{dtype} runs on the reference backend only (the Triton kernels take float32, float16, bfloat16)"


def is_interpreted(kernel) -> bool:
    """True when ``kernel`` is Triton's interpreter wrapper (TRITON_INTERPRET=1 at its import)."""
    return type(kernel).__name__ == "InterpretedFunction"


def triton_problem(load_kernel: Callable[[], object], device: torch.device) -> str | None:
    """None when a Triton kernel (returned by ``load_kernel``, which imports it) runs on ``device``.

    Triton runs on CUDA tensors, or on CPU tensors in its interpreter; @triton.jit reads
    ``TRITON_INTERPRET`` when the kernel module is imported, so setting it later does nothing.
    """
    if importlib.util.find_spec("triton") is None:
        return f"triton is not installed ({TRITON_HINT})"
    if device.type == "cuda" or is_interpreted(load_kernel()):
        return None
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "TRITON_INTERPRET=1 was set after the kernel module was imported; set it before importing tdeploy"
    return (f"tensors are on {device.type}; Triton needs CUDA tensors, or TRITON_INTERPRET=1 (set before "
            "importing tdeploy) to run on CPU")


def choose_backend(op_name: str, backend: str | None, device: torch.device,
                   problem: Callable[[str], str | None]) -> str:
    """The backend that will run: ``problem(name)`` is the op's ``backend_problem`` bound to its inputs."""
    if backend is None:
        return "triton" if device.type == "cuda" and problem("triton") is None else "reference"
    if backend not in BACKENDS:
        raise TdeployError(f"{op_name}: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)} or None")
    why = problem(backend)
    if why is not None:
        raise BackendUnavailable(f"{op_name}: backend {backend!r} cannot run: {why}")
    return backend
