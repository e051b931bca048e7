"""The custom attention ops that tdeploy exports as plugin nodes.

Each op package (``plugins/window_attention``, ``plugins/neighborhood_attention``) describes itself
with one :class:`PluginOp`. The exporter asks :func:`plugin_ops` for the torch -> ONNX translations;
the TensorRT engine builder asks it which TensorRT plugins to register and what to hash for the
engine cache. Nothing here imports TensorRT.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# ONNX domain and TensorRT plugin namespace of every tdeploy op.
DOMAIN = "tdeploy"
PLUGIN_NAMESPACE = "tdeploy"
PLUGIN_VERSION = "1"

# Packages that define a plugin op, in the order they are registered.
_OP_PACKAGES = (
    "tdeploy.plugins.window_attention",
    "tdeploy.plugins.neighborhood_attention",
)


@dataclass(frozen=True)
class PluginOp:
    name: str  # ONNX op_type and TensorRT plugin name, e.g. "WindowAttention"
    torch_op: object  # torch OpOverload the models call, e.g. torch.ops.tdeploy.window_attention.default
    onnx_translation: Callable  # onnxscript function for torch.onnx.export(custom_translation_table=...)
    register_trt: Callable[[], None]  # registers the TensorRT plugin (imports tensorrt lazily)
    package_dir: Path  # the op's folder: its sources are hashed into the engine cache key
    extra: dict = field(default_factory=dict)

    def source_hash(self) -> str:
        """sha256 over the op's Python sources: an engine built from other kernels is a cache miss."""
        digest = hashlib.sha256()
        for path in sorted(self.package_dir.glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()


def plugin_ops() -> list[PluginOp]:
    """All plugin ops that this installation provides (each package exposes ``PLUGIN_OP``)."""
    ops = []
    for package in _OP_PACKAGES:
        try:
            module = importlib.import_module(package)
        except ModuleNotFoundError as exc:
            if exc.name == package:  # the op has not been added to this tree
                continue
            raise
        if getattr(module, "PLUGIN_OP", None) is not None:
            ops.append(module.PLUGIN_OP)
    return ops


def custom_translation_table() -> dict:
    """torch op -> onnxscript translation, for ``torch.onnx.export(custom_translation_table=...)``."""
    return {op.torch_op: op.onnx_translation for op in plugin_ops()}


def plugins_hash() -> str:
    """One hash over every plugin's sources (engine cache key, sidecars)."""
    digest = hashlib.sha256()
    for op in plugin_ops():
        digest.update(op.name.encode())
        digest.update(op.source_hash().encode())
    return digest.hexdigest()
