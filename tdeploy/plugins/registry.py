"""The custom attention ops that tdeploy exports as plugin nodes.

Each op package (``plugins/window_attention``, ``plugins/neighborhood_attention``) describes itself
with one :class:`PluginOp` and registers it with :func:`register_plugin_op` when it is imported;
``tdeploy/plugins/__init__.py`` imports every op package, so importing anything of ``tdeploy.plugins``
registers them all. The exporter asks :func:`plugin_ops` for the torch -> ONNX translations and the
model-local functions; the TensorRT engine builder asks it which TensorRT plugins to register and
what to hash for the engine cache. Nothing here imports TensorRT.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# ONNX domain and TensorRT plugin namespace of every tdeploy op.
DOMAIN = "tdeploy"
PLUGIN_NAMESPACE = "tdeploy"
PLUGIN_VERSION = "1"
# This package: every source in it can change a kernel (the ops' kernels and launchers, and the shared
# triton_aot.py that rewrites the PTX entry, qdp.py's tiling fits, cpp_kernels.py's records).
PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PluginOp:
    name: str  # ONNX op_type and TensorRT plugin name, e.g. "WindowAttention"
    torch_op: object  # torch OpOverload the models call, e.g. torch.ops.tdeploy.window_attention.default
    onnx_translation: Callable  # onnxscript function for torch.onnx.export(custom_translation_table=...)
    onnx_function: object  # onnxscript OnnxFunction: the model-local function with the reference math
    register_trt: Callable[[], None]  # registers the TensorRT QDP plugin (imports tensorrt lazily)
    kernel_records: Callable  # the C++ plugin form's kernels for one node (plugins/<op>/cpp.py)
    flops: Callable  # torch.utils.flop_counter formula over the op's argument shapes (plugins/<op>/op.py)
    inputs: tuple[str, ...]  # the node's inputs, in order, e.g. ("qkv", "bias", "mask")
    package_dir: Path  # the op's folder (its README.md, sources)


_PLUGIN_OPS: list[PluginOp] = []


def register_plugin_op(op: PluginOp) -> PluginOp:
    """Called once by each op package; returns ``op`` (its ``PLUGIN_OP``)."""
    if any(o.name == op.name for o in _PLUGIN_OPS):
        raise RuntimeError(f"plugin op {op.name!r} registered twice")
    _PLUGIN_OPS.append(op)
    return op


def plugin_ops() -> list[PluginOp]:
    """Every plugin op, in registration order (window attention, neighborhood attention)."""
    return list(_PLUGIN_OPS)


def custom_translation_table() -> dict:
    """torch op -> onnxscript translation, for ``torch.onnx.export(custom_translation_table=...)``."""
    return {op.torch_op: op.onnx_translation for op in plugin_ops()}


def plugins_hash(package_dir: Path | None = None) -> str:
    """One hash over everything that decides the plugins' kernels: every Python source of this package
    (``package_dir``, for tests) and the version of Triton that compiles them. Engine cache key, sidecars."""
    package_dir = package_dir or PACKAGE_DIR
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode())
        digest.update(path.read_bytes())
    try:
        triton = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton = "absent"
    digest.update(f"triton {triton}".encode())
    return digest.hexdigest()
