"""Reference PyTorch models and their registry.

>>> from tdeploy.models import create_model, list_models
>>> model = create_model("vit-s16", checkpoint="vit_small_patch16_224.safetensors")
"""

from tdeploy.models.registry import (
    create_model,
    get_entry,
    is_family_alias,
    list_families,
    list_models,
    matching_variants,
    register_model,
)
from tdeploy.models.spec import ExportSpec, InputSpec, Tolerance

__all__ = [
    "ExportSpec",
    "InputSpec",
    "Tolerance",
    "create_model",
    "get_entry",
    "is_family_alias",
    "list_families",
    "list_models",
    "matching_variants",
    "register_model",
]
