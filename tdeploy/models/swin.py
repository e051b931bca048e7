"""Swin Transformer (Liu et al. 2021), laid out like timm's ``SwinTransformer`` (timm >= 0.9).

An image (B, 3, H, W) is cut into 4x4 patches (a stride-4 conv + LayerNorm) and goes through four
stages; stages 2-4 start with a patch merging (2x2 neighbours concatenated, LayerNorm, Linear 4C -> 2C)
that halves the resolution. Each stage alternates W-MSA and SW-MSA blocks: attention inside 7x7 windows,
every second block on a map cyclically shifted by half a window, with a mask keeping the wrapped-round
regions apart. A final LayerNorm, global average pooling and a linear head give the logits. Parameter
names equal timm's, so timm checkpoints load unchanged; the original Microsoft release files (patch
merging at the END of a stage, buffers saved) are remapped by :meth:`SwinTransformer.checkpoint_filter`.

Any H, W divisible by 32 work and equal timm's ``SwinTransformer(dynamic_img_size=True)``: windows and
shifts are fixed by the training size (as timm fixes them at construction), maps that are not whole
windows are zero-padded inside the block, and the shifted-window mask is built from the runtime size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch
from torch import nn

from tdeploy.models.layers.init import init_linear_weights
from tdeploy.models.layers.window import SwinBlock, padded_size, shifted_window_mask
from tdeploy.models.registry import register_model
from tdeploy.models.spec import (
    CLASSIFIER_THRESHOLDS,
    CLASSIFIER_TOLERANCES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ExportSpec,
    image_input,
)


@dataclass(frozen=True)
class SwinConfig:
    img_size: int = 224  # training resolution: fixes each stage's window and shift (as timm does)
    patch_size: int = 4  # pixels per patch side
    in_chans: int = 3
    num_classes: int = 1000  # 0: no head, the output is the pooled feature
    embed_dim: int = 96  # stage-1 width C; stage i has C * 2**i
    depths: tuple[int, ...] = (2, 2, 6, 2)  # blocks per stage
    num_heads: tuple[int, ...] = (3, 6, 12, 24)  # heads per stage
    window_size: int = 7  # window side in tokens
    mlp_ratio: float = 4.0  # MLP hidden = mlp_ratio * C
    qkv_bias: bool = True
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def stage_window(self, stage: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """(window, shift) of a stage's shifted blocks, from its resolution at ``img_size``.

        timm's rule: a stage whose map is not larger than the window uses a window the size of the
        map and no shift (e.g. stage 4 at 224: a 7x7 map, window 7, shift 0).
        """
        res = -(-self.img_size // self.patch_size)  # patch grid; each later stage halves it (rounding up)
        for _ in range(stage):
            res = (res + 1) // 2
        window = min(res, self.window_size)
        shift = 0 if res <= self.window_size else self.window_size // 2
        return (window, window), (shift, shift)


class PatchEmbed(nn.Module):
    """(B, 3, H, W) -> (B, H/4, W/4, C): stride-4 conv, then LayerNorm over channels."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        return self.norm(self.proj(x).permute(0, 2, 3, 1))  # (B, h, w, C)


class PatchMerging(nn.Module):
    """(B, H, W, C) -> (B, H/2, W/2, 2C): each 2x2 neighbourhood concatenated (timm's order), norm, Linear."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        B, H, W, C = x.shape
        # Odd sizes are zero-padded (never the case for inputs divisible by 32).
        h, w = (H + 1) // 2, (W + 1) // 2
        x = nn.functional.pad(x, (0, 0, 0, 2 * w - W, 0, 2 * h - H))
        # (B, h, 2, w, 2, C) -> (B, h, w, [w-offset, h-offset, C]): x00, x10, x01, x11 as in the paper.
        x = x.reshape(B, h, 2, w, 2, C).permute(0, 1, 3, 4, 2, 5).reshape(B, h, w, 4 * C)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    """Optional patch merging, then ``depth`` blocks alternating W-MSA and SW-MSA."""

    def __init__(self, cfg: SwinConfig, stage: int, dim: int):
        super().__init__()
        in_dim = dim // 2 if stage > 0 else dim
        self.downsample = PatchMerging(in_dim) if stage > 0 else nn.Identity()
        self.window, self.shift = cfg.stage_window(stage)
        self.blocks = nn.Sequential(*[
            SwinBlock(dim, cfg.num_heads[stage], self.window, self.shift if i % 2 else (0, 0),
                      cfg.mlp_ratio, cfg.qkv_bias, pad=True)
            for i in range(cfg.depths[stage])
        ])

    def forward(self, x):  # (B, H, W, C_in) -> (B, H', W', C)
        x = self.downsample(x)
        mask = None
        if any(self.shift) and len(self.blocks) > 1:
            # One mask per stage, for the map padded up to whole windows (shared by its shifted blocks).
            Hp, Wp = padded_size(x.shape[1], self.window[0]), padded_size(x.shape[2], self.window[1])
            mask = shifted_window_mask(Hp, Wp, self.window, self.shift, device=x.device, dtype=x.dtype)  # (nW, N, N)
        for block in self.blocks:
            x = block(x, mask)
        return x


class ClassifierHead(nn.Module):
    """Global average pool over (H, W), then ``fc`` (timm's key: head.fc)."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(dim, num_classes) if num_classes else nn.Identity()

    def forward(self, x):  # (B, H, W, C) -> (B, num_classes)
        return self.fc(x.mean(dim=(1, 2)))


class SwinTransformer(nn.Module):
    def __init__(self, cfg: SwinConfig):
        super().__init__()
        self.cfg = cfg
        dims = [cfg.embed_dim * 2**i for i in range(len(cfg.depths))]
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, cfg.embed_dim)
        self.layers = nn.Sequential(*[SwinStage(cfg, i, dims[i]) for i in range(len(cfg.depths))])
        self.norm = nn.LayerNorm(dims[-1])
        self.head = ClassifierHead(dims[-1], cfg.num_classes)
        init_linear_weights(self)

    def forward_features(self, x):  # (B, 3, H, W) -> (B, H/32, W/32, 8C)
        return self.norm(self.layers(self.patch_embed(x)))

    def forward(self, x):  # (B, 3, H, W) -> (B, num_classes) logits
        return self.head(self.forward_features(x))

    # --- deployment -------------------------------------------------------------------------------
    def export_spec(self) -> ExportSpec:
        c = self.cfg
        multiple = c.patch_size * 2 ** (len(c.depths) - 1)  # 32: every stage sees whole patches
        return ExportSpec(
            inputs=(image_input(c.in_chans, c.img_size),),
            outputs=("logits",),
            task="classification",
            metric="top1_agreement",
            size_multiple=multiple,
            min_size=multiple,
            mean=c.mean,
            std=c.std,
            validate_sizes=((c.img_size + multiple, c.img_size + multiple), (c.img_size - multiple, c.img_size + 3 * multiple)),
            tolerances=CLASSIFIER_TOLERANCES,
            metric_threshold=CLASSIFIER_THRESHOLDS,
        )

    @staticmethod
    def checkpoint_filter(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """timm files load as they are; Microsoft's release files are remapped.

        The original code puts patch merging at the END of stage i (``layers.i.downsample``, stage 0 has
        one), timm at the START of stage i+1, and calls the classifier ``head`` (timm: ``head.fc``).
        ``relative_position_index``/``attn_mask`` buffers are derived from the config and dropped.
        """
        original = "layers.0.downsample.reduction.weight" in state_dict
        out = {}
        for k, v in state_dict.items():
            if k.endswith(("relative_position_index", "attn_mask")):
                continue
            if original:
                k = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) + 1}.downsample", k)
                k = re.sub(r"^head\.(weight|bias)$", r"head.fc.\1", k)
            out[k] = v
        return out


def _swin(cfg: SwinConfig, **overrides) -> SwinTransformer:
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return SwinTransformer(replace(cfg, **overrides))


@register_model("swin-t", family="swin", default=True)
def swin_t(**overrides) -> SwinTransformer:
    """Swin-T, patch 4, window 7, 224 (timm swin_tiny_patch4_window7_224): C=96, depths 2-2-6-2."""
    return _swin(SwinConfig(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)), **overrides)


@register_model("swin-s", family="swin")
def swin_s(**overrides) -> SwinTransformer:
    """Swin-S, patch 4, window 7, 224 (timm swin_small_patch4_window7_224): C=96, depths 2-2-18-2."""
    return _swin(SwinConfig(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)), **overrides)


@register_model("swin-b", family="swin")
def swin_b(**overrides) -> SwinTransformer:
    """Swin-B, patch 4, window 7, 224 (timm swin_base_patch4_window7_224): C=128, depths 2-2-18-2."""
    return _swin(SwinConfig(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)), **overrides)


@register_model("swin-b-384", family="swin")
def swin_b_384(**overrides) -> SwinTransformer:
    """Swin-B, patch 4, window 12, 384 (timm swin_base_patch4_window12_384): C=128, depths 2-2-18-2."""
    return _swin(SwinConfig(img_size=384, window_size=12, embed_dim=128, depths=(2, 2, 18, 2),
                            num_heads=(4, 8, 16, 32)), **overrides)
