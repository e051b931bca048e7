"""Finding TensorRT (imported lazily: most of tdeploy works without it).

The decisions are pure functions of version strings (:func:`version_problem`), so they are tested on
machines without TensorRT; :func:`tensorrt_problem` applies them to the installed module.
"""

from __future__ import annotations

import importlib.util
import re

from tdeploy.errors import BackendUnavailable

MIN_TENSORRT = (10, 9)
INSTALL_HINT = (
    "install it on a machine with an NVIDIA GPU: `pip install tensorrt` (10.9 or newer), "
    "or use NVIDIA's TensorRT container"
)


def parse_version(text: str) -> tuple[int, ...]:
    """'10.9.0.34' -> (10, 9, 0, 34); '11.0.0rc1' -> (11, 0, 0); junk -> ()."""
    parts = []
    for piece in str(text).strip().split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.end() != len(piece):  # '0rc1': keep the number, stop after it
            break
    return tuple(parts)


def version_problem(version: str) -> str | None:
    """None when TensorRT ``version`` is one tdeploy supports (10.9+ and 11.x), else why not."""
    parsed = parse_version(version)
    if len(parsed) < 2:
        return f"cannot read the TensorRT version {version!r}; {INSTALL_HINT}"
    if parsed[:2] < MIN_TENSORRT:
        return f"TensorRT {version} is too old: tdeploy needs 10.9 or newer; {INSTALL_HINT}"
    return None


def tensorrt_major(version: str) -> int:
    parsed = parse_version(version)
    return parsed[0] if parsed else 0


def tensorrt_problem() -> str | None:
    """None when a usable TensorRT can be imported, else why not (one sentence)."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        return f"TensorRT is not installed ({exc.msg}); {INSTALL_HINT}"
    except Exception as exc:  # e.g. the libraries load but CUDA is missing
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"TensorRT failed to import: {first}; {INSTALL_HINT}"
    return version_problem(getattr(trt, "__version__", ""))


def probe_tensorrt() -> tuple[str | None, str | None]:
    """(version, import error) of the ``tensorrt`` module; (None, None) when it is not installed.
    Never raises: ``deploy doctor`` reports what it finds."""
    if importlib.util.find_spec("tensorrt") is None:
        return None, None
    try:
        import tensorrt as trt
    except Exception as exc:  # noqa: BLE001 - e.g. the libraries are there but CUDA is not
        text = str(exc).strip()
        return None, (text.splitlines()[0][:200] if text else type(exc).__name__)
    return getattr(trt, "__version__", None), None


def import_tensorrt():
    """The tensorrt module, or BackendUnavailable saying why it cannot be used."""
    problem = tensorrt_problem()
    if problem:
        raise BackendUnavailable(problem)
    import tensorrt

    return tensorrt


def gpu_problem() -> str | None:
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible (torch.cuda.is_available() is False)"
    return None


def gpu_identity(device: int = 0) -> tuple[str, tuple[int, int]]:
    """(name, compute capability) of the CUDA device, as recorded in engine sidecars."""
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), (int(major), int(minor))
