"""Calibration data: the user's images or token lines, preprocessed as the exported graph expects.

- Vision models: a folder of images. Each is converted to the model's channels (RGB, or gray for
  one-channel inputs), resized (bicubic, shorter side) and centre-cropped to the export size, scaled
  to [0, 1] and normalised with the spec's mean/std (the sidecar's preprocessing).
- The Transformer: a text file with one source sequence of token ids per line (whitespace or comma
  separated). The decoder graph is calibrated on the states greedy decoding actually visits: the
  PyTorch model decodes each line one token at a time and every step's decoder inputs (token,
  cross-attention keys/values, cache) become a calibration sample.

:func:`calibration_feeds` returns, per graph, a list of ``{input name: ndarray}`` feeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from tdeploy.artifact.spec import ExportSpec
from tdeploy.errors import TdeployError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _image_input(spec: ExportSpec):
    return next((i for i in spec.inputs if i.kind == "image"), None)


def _token_input(spec: ExportSpec):
    return next((i for i in spec.inputs if i.kind == "tokens"), None)


def image_files(folder: Path) -> list[Path]:
    if not folder.exists():
        raise TdeployError(f"calibration data not found: {folder} (give a folder of images)")
    if not folder.is_dir():
        raise TdeployError(f"--calib {folder} is a file: image models calibrate on a folder of images "
                           f"({', '.join(IMAGE_SUFFIXES)})")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TdeployError(f"calibration folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def load_image(path: Path, channels: int, size: tuple[int, int], mean=(), std=()) -> np.ndarray:
    """One image -> (1, C, H, W) float32: resize shorter side, centre crop, [0, 1], (x - mean) / std."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            h, w = size
            scale = max(h / img.height, w / img.width)
            nh, nw = max(h, round(img.height * scale)), max(w, round(img.width * scale))
            img = img.resize((nw, nh), Image.Resampling.BICUBIC)
            top, left = (nh - h) // 2, (nw - w) // 2
            img = img.crop((left, top, left + w, top + h))
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise TdeployError(f"calibration image {path} cannot be read ({type(exc).__name__}); remove it or "
                           "convert it to PNG/JPEG") from None
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (C, H, W)
    if channels not in (1, 3):
        arr = np.repeat(arr[:1], channels, axis=0)
    if mean and std:
        arr = (arr - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]
    return arr[None].astype(np.float32)


def read_token_lines(path: Path, low: int, high: int) -> list[list[int]]:
    if not path.exists():
        raise TdeployError(f"calibration data not found: {path} (give a text file with one line of token ids "
                           "per sequence)")
    if path.is_dir():
        raise TdeployError(f"--calib {path} is a folder: token models calibrate on a text file with one line of "
                           "token ids per sequence")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TdeployError(f"calibration file {path} cannot be read as text ({type(exc).__name__})") from None
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.replace(",", " ").strip()
        if not line:
            continue
        try:
            ids = [int(t) for t in line.split()]
        except ValueError:
            raise TdeployError(f"{path}:{number}: not a line of integer token ids: {line[:40]!r}") from None
        bad = [t for t in ids if not low <= t < high]
        if bad:
            raise TdeployError(f"{path}:{number}: token id {bad[0]} is outside the vocabulary ({low}..{high - 1})")
        lines.append(ids)
    if not lines:
        raise TdeployError(f"calibration file {path} has no token lines")
    return lines


def image_feeds(spec: ExportSpec, folder: Path, samples: int, size: tuple[int, int] | None = None) -> list[dict]:
    image = _image_input(spec)
    files = image_files(folder)[:samples]
    hw = tuple(size) if size else tuple(image.example[-2:])
    channels = int(image.shape[1]) if isinstance(image.shape[1], int) else int(image.example[1])
    feeds = []
    for path in files:
        feed = {image.name: load_image(path, channels, hw, spec.mean, spec.std)}
        for other in spec.inputs:
            if other.name != image.name:
                raise TdeployError(f"calibration of image models with more inputs ({other.name}) is not supported")
        feeds.append(feed)
    return feeds


def token_feeds(spec: ExportSpec, lines: list[list[int]]) -> list[dict]:
    """One feed per line, all padded to the longest line (masked): ONNX Runtime's calibrators stack the
    samples of a tensor, so every sample must have the same shape."""
    tokens = _token_input(spec)
    pad = int(spec.extra.get("pad_id", 0))
    length = max(len(ids) for ids in lines)
    feeds = []
    for ids in lines:
        feed = {}
        for inp in spec.inputs:
            if inp.name == tokens.name:
                feed[inp.name] = np.asarray([ids + [pad] * (length - len(ids))], dtype=np.int64)
            elif inp.kind == "mask":
                feed[inp.name] = (np.arange(length) >= len(ids))[None].astype(getattr(np, inp.dtype))
            else:
                raise TdeployError(f"cannot build calibration input {inp.name!r} ({inp.kind}) from token lines")
        feeds.append(feed)
    return feeds


@torch.inference_mode()
def seq2seq_decoder_feeds(encoder: torch.nn.Module, decoder: torch.nn.Module, enc_spec: ExportSpec,
                          dec_spec: ExportSpec, enc_feeds: list[dict], max_steps: int = 8) -> list[dict]:
    """Greedy decoding in PyTorch; the decoder inputs of every step up to ``max_steps`` are samples.

    ONNX Runtime's calibrators stack the samples of a tensor, so samples must share one shape: the
    KV cache grows each step, so this keeps the step whose cache length is reached by the most
    lines (every line is decoded to ``max_steps`` unless it ends), one sample per line.
    """
    extra = dec_spec.extra
    bos, eos = extra["bos_id"], extra.get("eos_id")
    L2, H, Dh = 2 * extra["num_layers"], extra["num_heads"], extra["head_dim"]
    names = [i.name for i in dec_spec.inputs]  # tokens, cross_kv, memory_mask, past_self_kv
    feeds = []
    for enc in enc_feeds:
        args = [torch.from_numpy(enc[i.name]) for i in enc_spec.inputs]
        _, cross = encoder(*args)
        mask = args[1] if len(args) > 1 else torch.zeros_like(args[0], dtype=torch.bool)
        past = torch.zeros(1, L2, H, 1, Dh)
        token = torch.tensor([[bos]])
        for _ in range(min(max_steps, extra.get("max_new_tokens", max_steps))):
            feeds.append(dict(zip(names, (token.numpy(), cross.numpy(), mask.numpy(), past.numpy()))))
            logits, past = decoder(token, cross, mask, past)
            token = logits.argmax(-1, keepdim=True)
            if eos is not None and int(token) == eos:
                break
    by_len: dict[int, list[dict]] = {}
    for feed in feeds:
        by_len.setdefault(feed[names[3]].shape[3], []).append(feed)
    # The longest cache that most lines reach: prefer later steps (a fuller cache) among the largest groups.
    best = max(by_len, key=lambda n: (len(by_len[n]) * 4 >= 3 * len(enc_feeds), n))
    return by_len[best]


def calibration_feeds(graphs: dict[str, tuple[torch.nn.Module, ExportSpec]], data: str | Path, samples: int,
                      size: tuple[int, int] | None = None) -> dict[str, list[dict]]:
    """``{graph name: [feed, ...]}`` for every graph of the artifact, from the user's data."""
    if samples < 1:
        raise TdeployError(f"--calib-samples must be >= 1 (got {samples})")
    data = Path(data)
    names = list(graphs)
    first_spec = graphs[names[0]][1]
    if _image_input(first_spec) is not None:
        if len(names) != 1:
            raise TdeployError("INT8 calibration of multi-graph image models is not supported")
        return {names[0]: image_feeds(first_spec, data, samples, size)}
    tokens = _token_input(first_spec)
    if tokens is None:
        raise TdeployError(f"cannot calibrate {names[0]}: its inputs are neither images nor tokens")
    if data.is_dir():
        raise TdeployError(f"--calib {data} is a folder: token models calibrate on a text file with one line of "
                           "token ids per sequence")
    lines = read_token_lines(data, int(max(tokens.low, 0)), int(tokens.high))[:samples]
    feeds = {names[0]: token_feeds(first_spec, lines)}
    if first_spec.task == "seq2seq" and len(names) == 2:
        (enc, enc_spec), (dec, dec_spec) = graphs[names[0]], graphs[names[1]]
        feeds[names[1]] = seq2seq_decoder_feeds(enc.eval(), dec.eval(), enc_spec, dec_spec, feeds[names[0]])
    elif len(names) > 1:
        raise TdeployError(f"INT8 calibration of graphs {names[1:]} is not supported")
    return feeds


class FeedReader:
    """onnxruntime.quantization CalibrationDataReader over a list of feeds, with a progress bar."""

    def __init__(self, feeds: list[dict], desc: str, progress: bool = True):
        from tqdm import tqdm

        self._iter: Iterator[dict] = iter(feeds)
        self._bar = tqdm(total=len(feeds), desc=desc, unit="sample", disable=not progress, leave=False)

    def get_next(self) -> dict | None:
        item = next(self._iter, None)
        if item is None:
            self._bar.close()
        else:
            self._bar.update(1)
        return item

    def rewind(self) -> None:  # the calibrator reads once
        pass
