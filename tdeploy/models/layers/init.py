"""Weight initialisation shared by the vision families (timm's ViT/Swin convention)."""

from __future__ import annotations

from torch import nn


def init_linear_weights(module: nn.Module, std: float = 0.02) -> None:
    """Every nn.Linear below ``module``: truncated-normal weights (std), zero biases.

    Only random-weight exports depend on it (checkpoints overwrite it); keeping one definition keeps
    the seeded weights that ``deploy validate`` rebuilds from a sidecar identical across families.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
