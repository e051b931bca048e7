"""Layer 1 -- the attention ops: one folder per op, every folder with the same files.

``<op>/README.md`` (shapes, attributes, math, dtypes, limits, versions), ``reference.py`` (THE
definition of correctness), ``op.py`` (the functional entry point, the torch custom op and
``backend_problem``: can this backend run here, and if not why), ``triton.py`` (kernel + launcher),
``onnx.py`` (the custom node + its model-local function) and ``trt.py`` (the TensorRT QDP AOT plugin).
Shared beside them: ``registry.py`` (one :class:`PluginOp` per op), ``backends.py`` (backend choice),
``autograd.py`` (gradients through the reference), ``onnx_functions.py`` (the one ONNX post-pass),
``triton_aot.py`` (Triton -> PTX for TensorRT) and ``qdp.py`` (what both QDP plugins share).

May import: ``tdeploy.errors`` and ``tdeploy.artifact`` (layer 0). ``tensorrt`` is imported only by
the TensorRT modules (``trt.py``, ``qdp.py``), and only inside functions.
"""

# Importing the op packages registers their PluginOp (see registry.py).
from tdeploy.plugins import window_attention  # noqa: F401, I001 - first: registration order
from tdeploy.plugins import neighborhood_attention  # noqa: F401
from tdeploy.plugins.registry import (
    DOMAIN,
    PLUGIN_NAMESPACE,
    PLUGIN_VERSION,
    PluginOp,
    custom_translation_table,
    plugin_ops,
    plugins_hash,
)

__all__ = [
    "DOMAIN",
    "PLUGIN_NAMESPACE",
    "PLUGIN_VERSION",
    "PluginOp",
    "custom_translation_table",
    "plugin_ops",
    "plugins_hash",
]
