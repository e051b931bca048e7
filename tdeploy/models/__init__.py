"""Layer 2 -- reference PyTorch models: one family per file, the registry, checkpoint loading.

May import: errors/artifact (0) and plugins (1) (the attention ops the models call).

>>> from tdeploy.models import create_model, list_models
>>> model = create_model("vit-s16", checkpoint="vit_small_patch16_224.safetensors")
"""

# Importing the family modules registers their variants (see registry.py).
from tdeploy.models import nat, swin, swinir, transformer, vit  # noqa: F401
from tdeploy.models.registry import (
    create_model,
    get_entry,
    is_family_alias,
    list_families,
    list_models,
    matching_variants,
    register_model,
    smallest_variant,
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
    "smallest_variant",
]
