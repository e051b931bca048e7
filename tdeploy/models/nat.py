"""Neighborhood Attention Transformer (NAT, Hassani et al. 2023) and Dilated NAT (DiNAT, Hassani & Shi 2022).

Laid out like the SHI-Labs classification code (``classification/nat.py``, ``classification/dinat.py``
of SHI-Labs/Neighborhood-Attention-Transformer), so the official checkpoint files load unchanged:

- ``patch_embed`` (ConvTokenizer): two overlapping 3x3 stride-2 convs (3 -> C/2 -> C, keys
  ``patch_embed.proj.0`` / ``patch_embed.proj.1``), then LayerNorm: (B, 3, H, W) -> (B, H/4, W/4, C);
- four ``levels``; level i has width C*2**i and ``depths[i]`` pre-norm blocks
  ``x + attn(norm1(x))``, ``x + mlp(norm2(x))`` (with layer scale ``gamma1``/``gamma2`` in the
  variants trained with it); the attention of a block is 2-D neighborhood attention, each pixel
  attending to its k x k nearest pixels (of its own dilation group in DiNAT) with a learned relative
  position bias ``rpb``;
- levels 0-2 end with a ConvDownsampler (3x3 stride-2 conv without bias doubling the channels, then
  LayerNorm), so the levels run at H/4, H/8, H/16, H/32;
- final LayerNorm ``norm``, global average pooling, linear ``head``.

DiNAT is the same network with a per-block dilation (``dilations``); NAT is DiNAT with every dilation 1.

Attention is ONE call of the ``neighborhood_attention`` op (tdeploy/plugins/neighborhood_attention)
per block, exported as one ``tdeploy::NeighborhoodAttention2D`` node. Any H, W divisible by 32 work
(one exported graph serves them all): the only size-dependent step, the zero padding of maps smaller
than ``kernel_size * dilation`` (as the first NAT release did, before the qkv Linear), is computed from
the runtime shape.

``features=True`` turns the model into a backbone returning the four level outputs (see
:meth:`NAT.forward_levels`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from tdeploy.errors import TdeployError
from tdeploy.models.layers import Mlp
from tdeploy.models.registry import register_model
from tdeploy.models.spec import (
    CLASSIFIER_THRESHOLDS,
    CLASSIFIER_TOLERANCES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ExportSpec,
    Tolerance,
    image_input,
)
from tdeploy.plugins.neighborhood_attention import neighborhood_attention

FEATURE_NAMES = ("feat_s4", "feat_s8", "feat_s16", "feat_s32")


@dataclass(frozen=True)
class NATConfig:
    img_size: int = 224  # export/validation resolution (no parameter depends on it)
    in_chans: int = 3
    num_classes: int = 1000  # 0: no head, the output is the pooled feature
    embed_dim: int = 64  # level-0 width C; level i has C * 2**i
    depths: tuple[int, ...] = (3, 4, 18, 5)  # blocks per level
    num_heads: tuple[int, ...] = (2, 4, 8, 16)  # heads per level
    mlp_ratio: float = 3.0  # MLP hidden = mlp_ratio * width
    kernel_size: int = 7  # neighborhood side k (odd)
    # Dilation of every block, one tuple per level (DiNAT); None: all 1 (NAT).
    dilations: tuple[tuple[int, ...], ...] | None = None
    layer_scale: float | None = None  # init value of gamma1/gamma2; None: no layer scale (and no keys)
    qkv_bias: bool = True
    norm_eps: float = 1e-5  # nn.LayerNorm default, as the official code
    # Backbone mode: forward returns the four level outputs (NCHW) instead of logits; norm/head dropped.
    features: bool = False
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def block_dilations(self) -> tuple[tuple[int, ...], ...]:
        """Dilation of each block, per level, checked against ``depths``."""
        if self.dilations is None:
            return tuple((1,) * d for d in self.depths)
        if len(self.dilations) != len(self.depths) or any(
            len(dl) != d for dl, d in zip(self.dilations, self.depths)
        ):
            raise TdeployError(
                f"dilations {[list(d) for d in self.dilations]} do not match depths {list(self.depths)}: "
                "give one dilation per block of every level"
            )
        return self.dilations


def alternating_dilations(depths: tuple[int, ...], level_dilation: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """DiNAT's schedule: in level i, even blocks use dilation 1 (local NA), odd blocks ``level_dilation[i]``.

    With depths (3, 4, 18, 5) and (8, 4, 2, 1) this is the published 224 schedule
    [[1, 8, 1], [1, 4, 1, 4], [1, 2, ...], [1, 1, 1, 1, 1]] (the dilated blocks span the whole map:
    7 * 8 = 56 = 224 / 4, 7 * 4 = 28, 7 * 2 = 14).
    """
    return tuple(tuple(1 if j % 2 == 0 else dl for j in range(n)) for n, dl in zip(depths, level_dilation))


class ConvTokenizer(nn.Module):
    """(B, 3, H, W) -> (B, H/4, W/4, C): 3x3 s2 conv to C/2, 3x3 s2 conv to C (overlapping), LayerNorm."""

    def __init__(self, in_chans: int, embed_dim: int, eps: float):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_chans, embed_dim // 2, kernel_size=3, stride=2, padding=1),
            nn.Conv2d(embed_dim // 2, embed_dim, kernel_size=3, stride=2, padding=1),
        )
        self.norm = nn.LayerNorm(embed_dim, eps=eps)

    def forward(self, x):
        return self.norm(self.proj(x).permute(0, 2, 3, 1))  # (B, H/4, W/4, C)


class ConvDownsampler(nn.Module):
    """(B, H, W, C) -> (B, H/2, W/2, 2C): 3x3 stride-2 conv (no bias), LayerNorm."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.reduction = nn.Conv2d(dim, 2 * dim, kernel_size=3, stride=2, padding=1, bias=False)
        self.norm = nn.LayerNorm(2 * dim, eps=eps)

    def forward(self, x):
        # .contiguous(): a channels-last strided input makes torch.export's conv meta pick a memory
        # format by batch size, which pins the exported batch to the example's (1).
        x = x.permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)
        return self.norm(self.reduction(x).permute(0, 2, 3, 1))


class NeighborhoodAttention2D(nn.Module):
    """qkv Linear -> neighborhood attention (+ rpb) -> proj Linear, on (B, H, W, C) maps.

    Keys as NATTEN 0.14-0.17's module: ``qkv``, ``rpb`` (heads, 2k-1, 2k-1), ``proj``. A map smaller
    than ``k * dilation`` on either axis is zero padded at the bottom/right to ``k * dilation`` BEFORE
    the qkv Linear and cropped after attention, as that module does; with a qkv bias the padded pixels
    are then ``bias`` rather than zero, which the op's own padding (of qkv) could not reproduce.
    """

    def __init__(self, dim: int, num_heads: int, kernel_size: int, dilation: int, qkv_bias: bool):
        super().__init__()
        if dim % num_heads:
            raise TdeployError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.window = kernel_size * dilation  # smallest map side the attention takes without padding
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.rpb = nn.Parameter(torch.zeros(num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # (B, H, W, C) -> (B, H, W, C)
        H, W = x.shape[1], x.shape[2]
        if isinstance(H, int) and isinstance(W, int) and H >= self.window and W >= self.window:
            xp = x  # eager, big enough: nothing to pad
        else:
            # Under torch.export H, W are symbolic: always pad, by an amount that may be 0.
            pad_h = torch.sym_max(self.window - H, 0)
            pad_w = torch.sym_max(self.window - W, 0)
            xp = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))  # (B, max(H, kd), max(W, kd), C)
        qkv = self.qkv(xp)  # (B, Hp, Wp, 3C) = (B, Hp, Wp, 3, heads, head_dim)
        y = neighborhood_attention(
            qkv, self.rpb, num_heads=self.num_heads, kernel_size=self.kernel_size, dilation=self.dilation
        )  # (B, Hp, Wp, C)
        y = self.proj(y)
        if xp is x:
            return y
        # Crop after proj (per-pixel, so the same result) with index_select, which writes a new
        # contiguous tensor: a strided view y[:, :H, :W] makes torch.export's contiguity checks (in
        # Linear, .contiguous(), the downsampler's conv) add guards that pin the batch to the example's
        # and the padding to 0. In ONNX this is two Gathers of arange(H), arange(W).
        y = y.index_select(1, torch.arange(H, device=y.device))
        return y.index_select(2, torch.arange(W, device=y.device))  # (B, H, W, C)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, kernel_size={self.kernel_size}, dilation={self.dilation}"


class NATLayer(nn.Module):
    """Pre-norm block: x + [gamma1 *] attn(norm1(x)), then x + [gamma2 *] mlp(norm2(x))."""

    def __init__(self, cfg: NATConfig, dim: int, num_heads: int, dilation: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.attn = NeighborhoodAttention2D(dim, num_heads, cfg.kernel_size, dilation, cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))
        self.layer_scale = cfg.layer_scale is not None
        if self.layer_scale:
            self.gamma1 = nn.Parameter(torch.full((dim,), float(cfg.layer_scale)))
            self.gamma2 = nn.Parameter(torch.full((dim,), float(cfg.layer_scale)))

    def forward(self, x):  # (B, H, W, C)
        if self.layer_scale:
            x = x + self.gamma1 * self.attn(self.norm1(x))
            return x + self.gamma2 * self.mlp(self.norm2(x))
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class NATBlock(nn.Module):
    """One level: ``blocks`` at one resolution, then (levels 0-2) the ``downsample``r."""

    def __init__(self, cfg: NATConfig, level: int, dilations: tuple[int, ...]):
        super().__init__()
        dim = cfg.embed_dim * 2**level
        self.blocks = nn.ModuleList([NATLayer(cfg, dim, cfg.num_heads[level], d) for d in dilations])
        last = level == len(cfg.depths) - 1
        self.downsample = None if last else ConvDownsampler(dim, cfg.norm_eps)

    def forward(self, x):  # (B, H, W, C) -> (B, H/2, W/2, 2C); the last level keeps its size
        return self.run_downsample(self.run_blocks(x))

    def run_blocks(self, x):
        for block in self.blocks:
            x = block(x)
        return x

    def run_downsample(self, x):
        return x if self.downsample is None else self.downsample(x)


class NAT(nn.Module):
    def __init__(self, cfg: NATConfig):
        super().__init__()
        if len(cfg.num_heads) != len(cfg.depths):
            raise TdeployError(f"num_heads {list(cfg.num_heads)} and depths {list(cfg.depths)} differ in length")
        self.cfg = cfg
        dilations = cfg.block_dilations()
        self.num_features = cfg.embed_dim * 2 ** (len(cfg.depths) - 1)
        self.patch_embed = ConvTokenizer(cfg.in_chans, cfg.embed_dim, cfg.norm_eps)
        self.levels = nn.ModuleList([NATBlock(cfg, i, dilations[i]) for i in range(len(cfg.depths))])
        if not cfg.features:
            self.norm = nn.LayerNorm(self.num_features, eps=cfg.norm_eps)
            self.head = nn.Linear(self.num_features, cfg.num_classes) if cfg.num_classes else nn.Identity()
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, NeighborhoodAttention2D):
                nn.init.trunc_normal_(m.rpb, std=0.02, a=-2.0, b=2.0)

    def forward_levels(self, x) -> tuple[torch.Tensor, ...]:
        """(B, 3, H, W) -> the output of each level's blocks, BEFORE its downsampler, channels-last:
        (B, H/4, W/4, C), (B, H/8, W/8, 2C), (B, H/16, W/16, 4C), (B, H/32, W/32, 8C).

        No norm is applied (the classification checkpoint has none per level; the detection and
        segmentation backbones add their own ``norm{i}``, trained with the downstream head).
        """
        x = self.patch_embed(x)
        outs = []
        for level in self.levels:
            x = level.run_blocks(x)
            outs.append(x)
            x = level.run_downsample(x)
        return tuple(outs)

    def forward_features(self, x):  # (B, 3, H, W) -> (B, 8C) pooled
        x = self.patch_embed(x)
        for level in self.levels:
            x = level(x)
        return self.norm(x).mean(dim=(1, 2))  # (B, H/32, W/32, 8C) -> (B, 8C)

    def forward(self, x):
        """(B, 3, H, W) -> (B, num_classes) logits; features mode: the four maps of
        :meth:`forward_levels` in NCHW, (B, C*2**i, H/2**(i+2), W/2**(i+2))."""
        if self.cfg.features:
            return tuple(f.permute(0, 3, 1, 2) for f in self.forward_levels(x))
        return self.head(self.forward_features(x))

    # --- deployment -------------------------------------------------------------------------------
    def export_spec(self) -> ExportSpec:
        c = self.cfg
        multiple = 2 ** (len(c.depths) + 1)  # 32: the tokenizer halves twice, three downsamplers once each
        if c.features:
            outputs, task, metric = FEATURE_NAMES[: len(c.depths)], "features", "cosine"
            # Un-normalised residual streams: magnitudes of tens, so a relative term matters.
            tolerances = {
                "fp32": {"": Tolerance(atol=1e-3, rtol=1e-3)},
                "fp16": {"": Tolerance(atol=1e-1, rtol=5e-2)},
                "int8": {"": Tolerance(atol=1.0, rtol=2e-1)},
            }
            threshold = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.98}
        else:
            outputs, task, metric = ("logits",), "classification", "top1_agreement"
            tolerances, threshold = CLASSIFIER_TOLERANCES, CLASSIFIER_THRESHOLDS
        return ExportSpec(
            inputs=(image_input(c.in_chans, c.img_size),),
            outputs=outputs,
            task=task,
            metric=metric,
            size_multiple=multiple,
            min_size=multiple,
            mean=c.mean,
            std=c.std,
            # 256: every level bigger; 320x192: level maps narrower than k*d in DiNAT (padding path).
            validate_sizes=((c.img_size + multiple, c.img_size + multiple),
                            (c.img_size + 3 * multiple, c.img_size - multiple)),
            tolerances=tolerances,
            metric_threshold=threshold,
            extra={"kernel_size": c.kernel_size, "dilations": [list(d) for d in c.block_dilations()]},
        )

    def checkpoint_filter(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Official SHI-Labs files load as they are. Backbone mode (and ``num_classes=0``) drops the keys
        of the parts it does not have (``norm``, ``head``)."""
        drop: tuple[str, ...] = ()
        if self.cfg.features:
            drop = ("norm.", "head.")
        elif not self.cfg.num_classes:
            drop = ("head.",)
        return {k: v for k, v in state_dict.items() if not k.startswith(drop)} if drop else dict(state_dict)


# ---- variants ------------------------------------------------------------------------------------
# Configs as SHI-Labs/Neighborhood-Attention-Transformer classification/nat.py and dinat.py (ImageNet-1K,
# 224): kernel 7 everywhere; layer scale 1e-5 in nat-small, nat-base and dinat-base (not dinat-small).
_MINI = dict(depths=(3, 4, 6, 5), num_heads=(2, 4, 8, 16), embed_dim=64, mlp_ratio=3.0)
_TINY = dict(depths=(3, 4, 18, 5), num_heads=(2, 4, 8, 16), embed_dim=64, mlp_ratio=3.0)
_SMALL = dict(depths=(3, 4, 18, 5), num_heads=(3, 6, 12, 24), embed_dim=96, mlp_ratio=2.0)
_BASE = dict(depths=(3, 4, 18, 5), num_heads=(4, 8, 16, 32), embed_dim=128, mlp_ratio=2.0)
# DiNAT is its own family ("dinat" -> dinat-tiny): a checkpoint holds no dilations, so nat-X and dinat-X
# files have the same keys and shapes and only the name used says which one a file is.
DINAT_LEVEL_DILATIONS = (8, 4, 2, 1)  # at 224: the dilated blocks of level i span the whole H/2**(i+2) map


def _tuples(value):
    """JSON (sidecar overrides) gives lists; the frozen config wants (nested) tuples."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _nat(base: dict, **overrides) -> NAT:
    overrides = {k: _tuples(v) for k, v in overrides.items()}
    return NAT(replace(NATConfig(**base), **overrides))


def _dinat(base: dict, **overrides) -> NAT:
    """DiNAT: NAT with the alternating schedule of :func:`alternating_dilations`, recomputed for
    overridden ``depths`` unless ``dilations`` are given too."""
    overrides = {k: _tuples(v) for k, v in overrides.items()}
    depths = overrides.get("depths", base["depths"])
    overrides.setdefault("dilations", alternating_dilations(depths, DINAT_LEVEL_DILATIONS))
    return NAT(replace(NATConfig(**base), **overrides))


@register_model("nat-mini", family="nat")
def nat_mini(**overrides) -> NAT:
    """NAT-Mini, kernel 7, 224 (SHI-Labs nat_mini): C=64, depths 3-4-6-5, heads 2-4-8-16, MLP 3x."""
    return _nat(_MINI, **overrides)


@register_model("nat-tiny", family="nat", default=True)
def nat_tiny(**overrides) -> NAT:
    """NAT-Tiny, kernel 7, 224 (SHI-Labs nat_tiny): C=64, depths 3-4-18-5, heads 2-4-8-16, MLP 3x."""
    return _nat(_TINY, **overrides)


@register_model("nat-small", family="nat")
def nat_small(**overrides) -> NAT:
    """NAT-Small, kernel 7, 224 (SHI-Labs nat_small): C=96, depths 3-4-18-5, heads 3-6-12-24, MLP 2x, layer scale."""
    return _nat(dict(_SMALL, layer_scale=1e-5), **overrides)


@register_model("nat-base", family="nat")
def nat_base(**overrides) -> NAT:
    """NAT-Base, kernel 7, 224 (SHI-Labs nat_base): C=128, depths 3-4-18-5, heads 4-8-16-32, MLP 2x, layer scale."""
    return _nat(dict(_BASE, layer_scale=1e-5), **overrides)


@register_model("dinat-mini", family="dinat")
def dinat_mini(**overrides) -> NAT:
    """DiNAT-Mini, kernel 7, 224 (SHI-Labs dinat_mini): NAT-Mini with dilations 1/8, 1/4, 1/2, 1 per level."""
    return _dinat(_MINI, **overrides)


@register_model("dinat-tiny", family="dinat", default=True)
def dinat_tiny(**overrides) -> NAT:
    """DiNAT-Tiny, kernel 7, 224 (SHI-Labs dinat_tiny): NAT-Tiny with dilations 1/8, 1/4, 1/2, 1 per level."""
    return _dinat(_TINY, **overrides)


@register_model("dinat-small", family="dinat")
def dinat_small(**overrides) -> NAT:
    """DiNAT-Small, kernel 7, 224 (SHI-Labs dinat_small): NAT-Small widths and dilations, no layer scale."""
    return _dinat(_SMALL, **overrides)


@register_model("dinat-base", family="dinat")
def dinat_base(**overrides) -> NAT:
    """DiNAT-Base, kernel 7, 224 (SHI-Labs dinat_base): NAT-Base widths and dilations, layer scale."""
    return _dinat(dict(_BASE, layer_scale=1e-5), **overrides)
