"""What both TensorRT QDP plugins share: the plugin API import, the GPU to compile for, attribute types,
and the limit on the launch's shared memory.

A module of the plugins' TensorRT forms (with each op's ``trt.py``): the only place besides
``tdeploy/tensorrt/`` that imports ``tensorrt``, and only inside functions. No ``from __future__
import annotations`` in the QDP modules: TensorRT's ``tensorrt.plugin`` reads the registered
functions' annotations with ``inspect.signature`` and rejects strings.
"""

import numpy as np
import numpy.typing as npt

from tdeploy.errors import BackendUnavailable, TdeployError

# ONNX INT attributes reach a plugin as kINT32 fields, FLOAT ones as kFLOAT32 (TensorRT's ONNX parser).
# TensorRT 10.9-11.0 turn a field annotated `int`/`float` into a value with `int(field.data)`, which
# numpy >= 2.4 refuses for a length-1 array; an NDArray annotation takes the array path in every
# version (10.9 ... 11.4), and the plugin reads element 0 (:func:`scalar`).
INT32_ATTR = npt.NDArray[np.int32]
FLOAT32_ATTR = npt.NDArray[np.float32]

# Dynamic shared memory a launch may use without the kernel opting in with
# cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES). TensorRT's AOT launch is inside
# libnvinfer; neither its documentation nor its Python plugin code says that it opts in, so the QDP
# plugins keep every kernel within this limit (re-tiled, or refused with the reason).
AOT_SHARED_LIMIT = 48 * 1024

_TARGET: dict = {"cc": None, "ptx_version": None}


def import_plugin_api(plugin_id: str):
    """(tensorrt, tensorrt.plugin) with AOT support (10.9+), or BackendUnavailable saying why not."""
    try:
        import tensorrt as trt
        import tensorrt.plugin as trtp
    except ImportError as exc:
        raise BackendUnavailable(
            f"TensorRT is not installed ({exc}); it is needed only to build engines with the {plugin_id} plugin: "
            "install it on a machine with an NVIDIA GPU"
        ) from exc
    if not hasattr(trtp, "aot_impl"):
        raise BackendUnavailable(f"TensorRT {trt.__version__} has no tensorrt.plugin.aot_impl; need >= 10.9")
    return trt, trtp


def scalar(value, kind=int):
    """An attribute as TensorRT hands it to the plugin (a length-1 array, or a plain number) -> ``kind``."""
    array = np.asarray(value).reshape(-1)
    if array.size != 1:
        raise TdeployError(f"plugin attribute {value!r}: expected one value, got {array.size}")
    return kind(array[0])


def set_target(cc: int | None, ptx_version: int | None = None) -> None:
    """The compute capability (e.g. 90) and PTX ISA (e.g. 84) the AOT kernels are compiled for;
    ``None``: the current GPU's, and Triton's default ISA capped by the GPU driver."""
    _TARGET["cc"], _TARGET["ptx_version"] = cc, ptx_version


def target(plugin_id: str) -> tuple[int, int | None]:
    """(compute capability, PTX ISA or None) to compile for."""
    cc = int(_TARGET["cc"]) if _TARGET["cc"] is not None else device_cc(plugin_id)
    return cc, _TARGET["ptx_version"] or driver_ptx_version()


def device_cc(plugin_id: str) -> int:
    """Compute capability of the current GPU as one number (e.g. 90), what the PTX is compiled for."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable(f"{plugin_id}: building a TensorRT engine needs a CUDA GPU")
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor


# The newest PTX ISA each CUDA driver JIT-compiles (CUDA's release notes), for drivers older than the
# ISA Triton emits (3.5.1: 8.7, CUDA 12.8).
_PTX_ISA_OF_DRIVER = {(12, 0): 80, (12, 1): 81, (12, 2): 82, (12, 3): 83, (12, 4): 84, (12, 5): 85, (12, 6): 85,
                      (12, 8): 87, (12, 9): 88, (13, 0): 90}


def ptx_isa_for_driver(driver: tuple[int, int]) -> int | None:
    """The newest PTX ISA (e.g. 85) a CUDA driver of version ``driver`` loads; None: any ISA Triton emits."""
    if driver >= max(_PTX_ISA_OF_DRIVER):
        return None
    known = [isa for version, isa in sorted(_PTX_ISA_OF_DRIVER.items()) if version <= driver]
    return known[-1] if known else min(_PTX_ISA_OF_DRIVER.values())


def driver_ptx_version() -> int | None:
    """The PTX ISA cap of this machine's CUDA driver (None: no cap needed, or no driver found)."""
    import ctypes

    try:
        lib = ctypes.CDLL("libcuda.so.1")
        value = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(value)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return ptx_isa_for_driver((value.value // 1000, value.value % 1000 // 10))


def fit_shared_memory(plugin_id: str, compile_fn, candidates: list[dict]):
    """The first of ``candidates`` (kernel configurations, preferred first) whose compiled kernel needs at
    most :data:`AOT_SHARED_LIMIT` bytes of shared memory: ``(kernel, config)``; else a one-line refusal."""
    tried = []
    for config in candidates:
        kernel = compile_fn(config)
        if kernel.shared <= AOT_SHARED_LIMIT:
            return kernel, config
        tried.append(f"{kernel.shared} B with {config}")
    raise TdeployError(
        f"{plugin_id}: every tiling of this configuration needs more than {AOT_SHARED_LIMIT} bytes of shared memory "
        f"({'; '.join(tried)}), and TensorRT's AOT launch does not raise the limit: use the C++ plugin library "
        "(--plugins cpp), which does"
    )
