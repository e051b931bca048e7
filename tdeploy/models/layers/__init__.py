"""Blocks shared by several model families."""

from tdeploy.models.layers.attention import MultiHeadSelfAttention
from tdeploy.models.layers.mlp import Mlp

__all__ = ["Mlp", "MultiHeadSelfAttention"]
