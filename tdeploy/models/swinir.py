"""SwinIR (Liang et al. 2021): image super-resolution, denoising and JPEG artifact reduction.

Laid out like the official ``network_swinir.py`` (same parameter names, so the released files load
unchanged) in three parts:

1. shallow features: a 3x3 conv, pixels -> ``embed_dim`` channels (``conv_first``);
2. deep features: residual Swin Transformer blocks (RSTB: ``depth`` Swin blocks at full resolution,
   then a conv, plus the RSTB's input), a LayerNorm, a conv (``conv_after_body``), plus the shallow
   features;
3. reconstruction, per task: ``pixelshuffle`` (classical SR: conv, LeakyReLU, conv+PixelShuffle steps,
   conv), ``pixelshuffledirect`` (lightweight SR: one conv + PixelShuffle), ``nearest+conv`` (real-world
   SR: nearest x2 + conv steps), or none (denoising/JPEG: a conv whose output is added to the input).

Any H, W: the input is reflect-padded up to whole windows inside the model (the official
``check_image_size``), the shifted-window mask is built for the padded size in the graph, and the
output is cropped to (scale*H, scale*W). Pixels go in and come out in [0, 1]; the model subtracts the
DIV2K RGB mean (3 channels) and multiplies by ``img_range`` itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from tdeploy.models.layers.init import init_linear_weights
from tdeploy.models.layers.window import SwinBlock, padded_size, shifted_window_mask
from tdeploy.models.registry import register_model
from tdeploy.models.spec import ExportSpec, InputSpec, Tolerance

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "")


@dataclass(frozen=True)
class SwinIRConfig:
    upscale: int = 4  # output / input size; 1 for denoising and JPEG
    in_chans: int = 3  # 3 (RGB) or 1 (grayscale); the output has as many
    img_size: int = 48  # training patch size; only sets the precomputed mask in the official code
    window_size: int = 8  # window side in pixels (patch size is 1)
    embed_dim: int = 180  # token width C
    depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6)  # Swin blocks per RSTB (one entry per RSTB)
    num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6)  # heads per RSTB
    mlp_ratio: float = 2.0  # MLP hidden = mlp_ratio * C (2 in every official model)
    qkv_bias: bool = True
    img_range: float = 1.0  # pixels are scaled by this inside (1; 255 for the JPEG models)
    upsampler: str = "pixelshuffle"  # one of UPSAMPLERS; "" = no upsampling, residual output
    resi_connection: str = "1conv"  # "1conv" or "3conv" (the conv closing an RSTB and the body)
    num_feat: int = 64  # channels of the pixelshuffle / nearest+conv reconstruction

    def __post_init__(self):
        if self.upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler {self.upsampler!r}: choose one of {UPSAMPLERS}")
        if self.upsampler == "" and self.upscale != 1:
            raise ValueError("a SwinIR without upsampler (denoising/JPEG) has upscale 1")
        if self.upsampler == "nearest+conv" and self.upscale not in (2, 4):
            raise ValueError("nearest+conv upsampling supports upscale 2 or 4")

    def window(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(window, shift) of shifted blocks; the official rule clamps to a training map smaller than it."""
        if self.img_size <= self.window_size:
            return (self.img_size,) * 2, (0, 0)
        return (self.window_size,) * 2, (self.window_size // 2,) * 2


def _res_conv(dim: int, kind: str) -> nn.Module:
    """The conv closing an RSTB / the body: 3x3, or (3conv) a 3x3-1x1-3x3 bottleneck at dim/4."""
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if kind == "3conv":
        return nn.Sequential(
            nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(dim // 4, dim, 3, 1, 1),
        )
    raise ValueError(f"resi_connection {kind!r}: choose 1conv or 3conv")


def to_nchw(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, C, H, W), copied to contiguous memory.

    The explicit copy keeps torch.export from guarding on the batch size: a conv on a permuted
    (channels-last strided) input makes the fake conv pick a memory format by asking whether
    batch <= 1, which would pin the exported batch to the example's 1.
    """
    return x.permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format)


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, H, W, C) tokens (patch size 1), then LayerNorm (the official ``patch_embed.norm``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1))


class ResidualGroup(nn.Module):
    """The Swin blocks of one RSTB (official ``BasicLayer`` without downsampling)."""

    def __init__(self, cfg: SwinIRConfig, depth: int, num_heads: int):
        super().__init__()
        window, shift = cfg.window()
        self.blocks = nn.ModuleList([
            SwinBlock(cfg.embed_dim, num_heads, window, shift if i % 2 else (0, 0), cfg.mlp_ratio, cfg.qkv_bias,
                      pad=False)  # the image is already padded to whole windows
            for i in range(depth)
        ])

    def forward(self, x, mask):  # (B, H, W, C)
        for block in self.blocks:
            x = block(x, mask)
        return x


class RSTB(nn.Module):
    """Residual Swin Transformer block: x + conv(blocks(x)), on (B, H, W, C) tokens."""

    def __init__(self, cfg: SwinIRConfig, depth: int, num_heads: int):
        super().__init__()
        self.residual_group = ResidualGroup(cfg, depth, num_heads)
        self.conv = _res_conv(cfg.embed_dim, cfg.resi_connection)

    def forward(self, x, mask):  # (B, H, W, C)
        y = to_nchw(self.residual_group(x, mask))  # (B, C, H, W)
        return self.conv(y).permute(0, 2, 3, 1) + x


class Upsample(nn.Sequential):
    """Classical SR: log2(scale) x (conv -> 4C, PixelShuffle(2)), or for 3: conv -> 9C, PixelShuffle(3)."""

    def __init__(self, scale: int, num_feat: int):
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale {scale} is not supported: use 2^n or 3")
        super().__init__(*layers)


class UpsampleOneStep(nn.Sequential):
    """Lightweight SR: one conv to scale^2 * out channels, then PixelShuffle(scale)."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int):
        super().__init__(nn.Conv2d(num_feat, scale**2 * num_out_ch, 3, 1, 1), nn.PixelShuffle(scale))


class SwinIR(nn.Module):
    def __init__(self, cfg: SwinIRConfig):
        super().__init__()
        self.cfg = cfg
        c, f = cfg.embed_dim, cfg.num_feat
        mean = DIV2K_RGB_MEAN if cfg.in_chans == 3 else (0.0,) * cfg.in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        # 1. shallow features
        self.conv_first = nn.Conv2d(cfg.in_chans, c, 3, 1, 1)
        # 2. deep features
        self.patch_embed = PatchEmbed(c)
        self.layers = nn.ModuleList([RSTB(cfg, d, h) for d, h in zip(cfg.depths, cfg.num_heads)])
        self.norm = nn.LayerNorm(c)
        self.conv_after_body = _res_conv(c, cfg.resi_connection)
        # 3. reconstruction
        if cfg.upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(c, f, 3, 1, 1), nn.LeakyReLU(inplace=True))
            self.upsample = Upsample(cfg.upscale, f)
            self.conv_last = nn.Conv2d(f, cfg.in_chans, 3, 1, 1)
        elif cfg.upsampler == "pixelshuffledirect":
            self.upsample = UpsampleOneStep(cfg.upscale, c, cfg.in_chans)
        elif cfg.upsampler == "nearest+conv":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(c, f, 3, 1, 1), nn.LeakyReLU(inplace=True))
            self.conv_up1 = nn.Conv2d(f, f, 3, 1, 1)
            if cfg.upscale == 4:
                self.conv_up2 = nn.Conv2d(f, f, 3, 1, 1)
            self.conv_hr = nn.Conv2d(f, f, 3, 1, 1)
            self.conv_last = nn.Conv2d(f, cfg.in_chans, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        else:
            self.conv_last = nn.Conv2d(c, cfg.in_chans, 3, 1, 1)
        init_linear_weights(self)

    def forward_features(self, x):  # (B, C, Hp, Wp), Hp/Wp whole windows -> same
        Hp, Wp = x.shape[2], x.shape[3]
        window, shift = self.cfg.window()
        # One mask for the whole model: every shifted block sees the same padded size.
        mask = shifted_window_mask(Hp, Wp, window, shift, device=x.device, dtype=x.dtype) if any(shift) else None
        x = self.patch_embed(x)  # (B, Hp, Wp, C)
        for layer in self.layers:
            x = layer(x, mask)
        return to_nchw(self.norm(x))  # (B, C, Hp, Wp)

    def forward(self, x):  # (B, in_chans, H, W) in [0, 1] -> (B, in_chans, scale*H, scale*W)
        cfg = self.cfg
        H, W = x.shape[2], x.shape[3]
        ws = cfg.window_size
        # The official check_image_size: reflect-pad bottom/right up to whole windows.
        x = F.pad(x, (0, padded_size(W, ws) - W, 0, padded_size(H, ws) - H), mode="reflect")
        if cfg.in_chans == 3:
            x = x - self.mean
        if cfg.img_range != 1:
            x = x * cfg.img_range
        if cfg.upsampler == "pixelshuffle":
            x = self.conv_first(x)
            x = self.conv_after_body(self.forward_features(x)) + x
            x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        elif cfg.upsampler == "pixelshuffledirect":
            x = self.conv_first(x)
            x = self.upsample(self.conv_after_body(self.forward_features(x)) + x)
        elif cfg.upsampler == "nearest+conv":
            x = self.conv_first(x)
            x = self.conv_before_upsample(self.conv_after_body(self.forward_features(x)) + x)
            x = self.lrelu(self.conv_up1(F.interpolate(x, scale_factor=2.0, mode="nearest")))
            if cfg.upscale == 4:
                x = self.lrelu(self.conv_up2(F.interpolate(x, scale_factor=2.0, mode="nearest")))
            x = self.conv_last(self.lrelu(self.conv_hr(x)))
        else:  # denoising / JPEG: predict the residual
            first = self.conv_first(x)
            x = x + self.conv_last(self.conv_after_body(self.forward_features(first)) + first)
        if cfg.img_range != 1:
            x = x / cfg.img_range
        if cfg.in_chans == 3:
            x = x + self.mean
        return x[:, :, : H * cfg.upscale, : W * cfg.upscale]

    # --- deployment -------------------------------------------------------------------------------
    def export_spec(self) -> ExportSpec:
        c = self.cfg
        return ExportSpec(
            inputs=(
                InputSpec(
                    "pixel_values",
                    ("batch", c.in_chans, "height", "width"),
                    example=(1, c.in_chans, 64, 64),
                    low=0.0,
                    high=1.0,
                ),
            ),
            outputs=("image",),
            task="super_resolution" if c.upscale > 1 else "restoration",
            metric="psnr",
            size_multiple=1,
            # Reflect padding needs pad < size; any size >= the window satisfies that.
            min_size=c.window_size,
            validate_sizes=((37, 53),),
            # Outputs are pixels in about [0, 1]. fp32 ORT vs PyTorch differs by float rounding (measured
            # 9.5e-7 on the lightweight x2, ~1e-5 on the deepest variants: tolerance 5x that); fp16 keeps ~3
            # decimal digits (7.6e-4 on the lightweight x2, a few 1e-3 through ~40 blocks: >= 40 dB;
            # tolerance ~3x the deep measurement); int8 symmetric per-tensor Q/DQ puts ~0.5% noise on every activation,
            # which through the residual body lands around 30-35 dB, so 28 dB is the floor.
            tolerances={
                "fp32": {"": Tolerance(atol=5e-5, rtol=0.0)},
                "fp16": {"": Tolerance(atol=1e-2, rtol=0.0)},
                "int8": {"": Tolerance(atol=3e-1, rtol=0.0)},
            },
            metric_threshold={"fp32": 60.0, "fp16": 40.0, "int8": 28.0},
            extra={"upscale": c.upscale, "window_size": c.window_size, "in_chans": c.in_chans},
        )

    def checkpoint_filter(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Official files load as they are, minus buffers derived from the config.

        ``attn.relative_position_index`` and ``attn_mask`` (saved by the official code) are dropped:
        the index follows from the window size and the mask is built for the runtime size.
        """
        return {k: v for k, v in state_dict.items() if not k.endswith(("relative_position_index", "attn_mask"))}


def _swinir(cfg: SwinIRConfig, **overrides) -> SwinIR:
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    if "depths" in overrides and "num_heads" not in overrides:  # fewer RSTBs: keep the heads per RSTB
        overrides["num_heads"] = (cfg.num_heads[0],) * len(overrides["depths"])
    return SwinIR(replace(cfg, **overrides))


_CLASSICAL = SwinIRConfig(img_size=48, upsampler="pixelshuffle")  # SwinIR-M
_LIGHTWEIGHT = SwinIRConfig(img_size=64, embed_dim=60, depths=(6,) * 4, num_heads=(6,) * 4,
                            upsampler="pixelshuffledirect")
_REAL_M = SwinIRConfig(upscale=4, img_size=64, upsampler="nearest+conv")
_REAL_L = SwinIRConfig(upscale=4, img_size=64, embed_dim=240, depths=(6,) * 9, num_heads=(8,) * 9,
                       upsampler="nearest+conv", resi_connection="3conv")
_DENOISE = SwinIRConfig(upscale=1, img_size=128, upsampler="")
_JPEG = SwinIRConfig(upscale=1, img_size=126, window_size=7, img_range=255.0, upsampler="")


def _register_classical(scale: int, default: bool = False):
    def build(**overrides) -> SwinIR:
        return _swinir(replace(_CLASSICAL, upscale=scale), **overrides)

    build.__doc__ = (f"SwinIR-M classical SR x{scale} (001_classicalSR_*_SwinIR-M_x{scale}): C=180, 6 RSTB x 6, "
                     "window 8, pixelshuffle")
    return register_model(f"swinir-classical-x{scale}", family="swinir", default=default)(build)


def _register_lightweight(scale: int):
    def build(**overrides) -> SwinIR:
        return _swinir(replace(_LIGHTWEIGHT, upscale=scale), **overrides)

    build.__doc__ = (f"SwinIR-S lightweight SR x{scale} (002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{scale}): C=60, "
                     "4 RSTB x 6, window 8, pixelshuffledirect")
    return register_model(f"swinir-lightweight-x{scale}", family="swinir")(build)


swinir_classical_x2 = _register_classical(2)
swinir_classical_x3 = _register_classical(3)
swinir_classical_x4 = _register_classical(4, default=True)
swinir_classical_x8 = _register_classical(8)
swinir_lightweight_x2 = _register_lightweight(2)
swinir_lightweight_x3 = _register_lightweight(3)
swinir_lightweight_x4 = _register_lightweight(4)


@register_model("swinir-real-x4", family="swinir")
def swinir_real_x4(**overrides) -> SwinIR:
    """SwinIR-M real-world SR x4 (003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN): C=180, 6x6, nearest+conv."""
    return _swinir(_REAL_M, **overrides)


@register_model("swinir-real-x4-large", family="swinir")
def swinir_real_x4_large(**overrides) -> SwinIR:
    """SwinIR-L real-world SR x4 (003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN): C=240, 9x6, 8 heads, 3conv."""
    return _swinir(_REAL_L, **overrides)


@register_model("swinir-denoise-gray", family="swinir")
def swinir_denoise_gray(**overrides) -> SwinIR:
    """SwinIR-M grayscale denoising (004_grayDN_DFWB_s128w8_SwinIR-M_noise*): 1 channel, C=180, 6x6, window 8."""
    return _swinir(replace(_DENOISE, in_chans=1), **overrides)


@register_model("swinir-denoise-color", family="swinir")
def swinir_denoise_color(**overrides) -> SwinIR:
    """SwinIR-M color denoising (005_colorDN_DFWB_s128w8_SwinIR-M_noise*): RGB, C=180, 6x6, window 8."""
    return _swinir(replace(_DENOISE, in_chans=3), **overrides)


@register_model("swinir-jpeg-gray", family="swinir")
def swinir_jpeg_gray(**overrides) -> SwinIR:
    """SwinIR-M grayscale JPEG artifact reduction (006_CAR_DFWB_s126w7_SwinIR-M_jpeg*): 1 channel, window 7."""
    return _swinir(replace(_JPEG, in_chans=1), **overrides)


@register_model("swinir-jpeg-color", family="swinir")
def swinir_jpeg_color(**overrides) -> SwinIR:
    """SwinIR-M color JPEG artifact reduction (006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg*): RGB, window 7."""
    return _swinir(replace(_JPEG, in_chans=3), **overrides)
