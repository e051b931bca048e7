"""Vision Transformer (Dosovitskiy et al. 2021), laid out like timm's ``VisionTransformer``.

An image (B, 3, H, W) is cut into 16x16 patches, each projected to a token (a stride-16 conv), a
class token is prepended, a learned position embedding is added, and pre-norm transformer blocks
(multi-head attention + 4x GELU MLP) follow; the class token's final state goes through LayerNorm
and the linear head. Parameter names equal timm's, so timm checkpoints load unchanged.

Any H, W divisible by 16 work: the position embedding, learned on a 14x14 grid, is resampled to the
runtime grid inside the graph (bicubic with antialias, as timm's ``dynamic_img_size`` does, written as
matrix products that TensorRT parses: layers/resample.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tdeploy.models.layers import Mlp, MultiHeadSelfAttention
from tdeploy.models.layers.init import init_linear_weights
from tdeploy.models.layers.resample import resample_grid
from tdeploy.models.registry import register_model
from tdeploy.models.spec import (
    CLASSIFIER_THRESHOLDS,
    CLASSIFIER_TOLERANCES,
    ExportSpec,
    image_input,
)

# timm's augreg ViT checkpoints normalise with 0.5/0.5.
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ViTConfig:
    img_size: int = 224  # training resolution: sets the position embedding grid (img_size / patch)
    patch_size: int = 16  # pixels per patch side
    in_chans: int = 3
    num_classes: int = 1000  # 0: no head, the output is the pooled feature
    embed_dim: int = 768  # token width C
    depth: int = 12  # transformer blocks
    num_heads: int = 12
    mlp_ratio: float = 4.0  # MLP hidden = mlp_ratio * C
    qkv_bias: bool = True
    norm_eps: float = 1e-6  # timm's ViT LayerNorm eps
    mean: tuple[float, ...] = INCEPTION_MEAN
    std: tuple[float, ...] = INCEPTION_STD


class PatchEmbed(nn.Module):
    """Non-overlapping patch -> token projection: (B, 3, H, W) -> (B, H/p, W/p, C)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).permute(0, 2, 3, 1)  # (B, Hp, Wp, C)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.attn = MultiHeadSelfAttention(cfg.embed_dim, cfg.num_heads, cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio))

    def forward(self, x):  # (B, 1 + N, C)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def resample_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], new_hw: tuple) -> torch.Tensor:
    """Resample the patch part of a (1, 1 + gh*gw, C) position embedding to ``new_hw`` patches.

    Antialiased bicubic, as timm's ``resample_abs_pos_embed``, computed as two matrix products
    (layers/resample.py) so that TensorRT parses the exported graph (it refuses an antialiased Resize).
    Sizes known at trace time that equal the trained grid skip it (a static export at the training
    size has no resample at all); a dynamic graph resamples for whatever size it runs at, and its
    matrices are exactly the identity at the trained grid. Returns (1, 1 + h*w, C).
    """
    if all(isinstance(s, int) for s in new_hw) and tuple(new_hw) == tuple(grid):
        return pos_embed
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    C = pos_embed.shape[-1]
    patch_pos = patch_pos.reshape(1, grid[0], grid[1], C).permute(0, 3, 1, 2)  # (1, C, gh, gw)
    patch_pos = resample_grid(patch_pos, new_hw)  # (1, C, h, w)
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, C)  # (1, h*w, C)
    return torch.cat([cls_pos, patch_pos], dim=1)


class VisionTransformer(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.grid = (cfg.img_size // cfg.patch_size,) * 2
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, cfg.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + self.grid[0] * self.grid[1], cfg.embed_dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes) if cfg.num_classes else nn.Identity()
        self._init_weights()

    def _init_weights(self):
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        init_linear_weights(self)

    def forward_features(self, x):  # (B, 3, H, W) -> (B, 1 + H/p * W/p, C)
        x = self.patch_embed(x)  # (B, h, w, C)
        B, h, w, C = x.shape
        x = torch.cat([self.cls_token.expand(B, -1, -1), x.reshape(B, h * w, C)], dim=1)
        x = x + resample_pos_embed(self.pos_embed, self.grid, (h, w))
        return self.norm(self.blocks(x))

    def forward(self, x):  # (B, 3, H, W) -> (B, num_classes) logits
        return self.head(self.forward_features(x)[:, 0])

    # --- deployment -------------------------------------------------------------------------------
    def export_spec(self) -> ExportSpec:
        c = self.cfg
        return ExportSpec(
            inputs=(image_input(c.in_chans, c.img_size),),
            outputs=("logits",),
            task="classification",
            metric="top1_agreement",
            size_multiple=c.patch_size,
            min_size=c.patch_size,
            mean=c.mean,
            std=c.std,
            validate_sizes=((c.img_size + 2 * c.patch_size, c.img_size - 2 * c.patch_size),),
            tolerances=CLASSIFIER_TOLERANCES,
            metric_threshold=CLASSIFIER_THRESHOLDS,
        )

    @staticmethod
    def checkpoint_filter(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """timm ViT checkpoints load as they are; an identity ``fc_norm``/``head_drop`` has no keys."""
        return {k: v for k, v in state_dict.items() if not k.startswith(("fc_norm.", "head_drop."))}


def _vit(cfg: ViTConfig, **overrides) -> VisionTransformer:
    from dataclasses import replace

    return VisionTransformer(replace(cfg, **overrides))


@register_model("vit-ti16", family="vit")
def vit_ti16(**overrides) -> VisionTransformer:
    """ViT-Ti/16 at 224 (timm vit_tiny_patch16_224): C=192, 12 blocks, 3 heads."""
    return _vit(ViTConfig(embed_dim=192, depth=12, num_heads=3), **overrides)


@register_model("vit-s16", family="vit")
def vit_s16(**overrides) -> VisionTransformer:
    """ViT-S/16 at 224 (timm vit_small_patch16_224): C=384, 12 blocks, 6 heads."""
    return _vit(ViTConfig(embed_dim=384, depth=12, num_heads=6), **overrides)


@register_model("vit-b16", family="vit", default=True)
def vit_b16(**overrides) -> VisionTransformer:
    """ViT-B/16 at 224 (timm vit_base_patch16_224): C=768, 12 blocks, 12 heads."""
    return _vit(ViTConfig(embed_dim=768, depth=12, num_heads=12), **overrides)
