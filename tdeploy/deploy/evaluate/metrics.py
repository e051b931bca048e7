"""Task metrics of a backend's outputs against the PyTorch reference.

Each metric takes (got, ref) arrays of one output and returns a float; higher is better.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tdeploy.runtime.compare import cosine


def top1_agreement(got: np.ndarray, ref: np.ndarray) -> float:
    """Fraction of samples whose arg-max class is the same. (B, classes) logits."""
    return float(np.mean(got.reshape(len(got), -1).argmax(-1) == ref.reshape(len(ref), -1).argmax(-1)))


def psnr(got: np.ndarray, ref: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, data_range]; inf when identical."""
    got = np.clip(got.astype(np.float64), 0, data_range)
    ref = np.clip(ref.astype(np.float64), 0, data_range)
    mse = float(np.mean((got - ref) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - size // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter2d(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' Gaussian filter over the last two axes."""
    from numpy.lib.stride_tricks import sliding_window_view

    k = len(g)
    rows = (sliding_window_view(img, k, axis=-1) * g).sum(-1)
    return (sliding_window_view(rows, k, axis=-2) * g).sum(-1)


def ssim(got: np.ndarray, ref: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5), per channel, images (..., H, W)."""
    got = np.clip(got.astype(np.float64), 0, data_range)
    ref = np.clip(ref.astype(np.float64), 0, data_range)
    if min(got.shape[-2:]) < 11:
        return float("nan")
    g = _gaussian_window()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _filter2d(got, g), _filter2d(ref, g)
    sxx = _filter2d(got * got, g) - mu_x**2
    syy = _filter2d(ref * ref, g) - mu_y**2
    sxy = _filter2d(got * ref, g) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return float(ssim_map.mean())


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of RGB images (B, 3, H, W) in [0, 1] -> (B, 1, H, W), as SR papers report."""
    r, g, b = img[:, 0], img[:, 1], img[:, 2]
    return ((65.481 * r + 128.553 * g + 24.966 * b + 16.0) / 255.0)[:, None]


def psnr_y(got: np.ndarray, ref: np.ndarray) -> float:
    if got.shape[1] != 3:
        return psnr(got, ref)
    return psnr(rgb_to_y(np.clip(got, 0, 1)), rgb_to_y(np.clip(ref, 0, 1)))


def ssim_y(got: np.ndarray, ref: np.ndarray) -> float:
    if got.shape[1] != 3:
        return ssim(got, ref)
    return ssim(rgb_to_y(np.clip(got, 0, 1)), rgb_to_y(np.clip(ref, 0, 1)))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "top1_agreement": top1_agreement,
    "psnr": psnr,
    "psnr_y": psnr_y,
    "ssim": ssim,
    "ssim_y": ssim_y,
    "cosine": cosine,
}

# Metrics reported for each task, besides the spec's main metric.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("top1_agreement",),
    "super_resolution": ("psnr", "ssim", "psnr_y", "ssim_y"),
    "restoration": ("psnr", "ssim", "psnr_y", "ssim_y"),
    "features": ("cosine",),
}
