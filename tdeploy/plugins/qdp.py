"""What both TensorRT QDP plugins share: importing TensorRT's Python plugin API, and the GPU to compile for.

A module of the plugins' TensorRT forms (with the ``trt.py`` of each op): the only place besides
``tdeploy/tensorrt/`` that imports ``tensorrt``, and only inside functions.
"""

from __future__ import annotations

from tdeploy.errors import BackendUnavailable


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


def device_cc(plugin_id: str) -> int:
    """Compute capability of the current GPU as one number (e.g. 90), what the PTX is compiled for."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable(f"{plugin_id}: building a TensorRT engine needs a CUDA GPU")
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor
