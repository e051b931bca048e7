"""Custom attention ops: PyTorch reference, Triton kernel, ONNX node + local function, TensorRT plugin.

See ``plugins/<op>/README.md`` for each op. The models call the functional entry points
(``window_attention``, ``neighborhood_attention``); the exporter and engine builder use
:mod:`tdeploy.plugins.registry`.
"""

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
