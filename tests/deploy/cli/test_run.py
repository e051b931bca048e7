"""``deploy run`` on a real photo (skimage's astronaut), whole and tiled, ORT and torch."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tdeploy.deploy.tasks.image_io import read_image, write_image
from tdeploy.export import ExportOptions, export
from tests.helpers import run_cli

SMALL = dict(depths=(2, 2))


@pytest.fixture(scope="module")
def sr_artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "swinir-lightweight-x2"
    export("swinir-lightweight-x2", out, options=ExportOptions(), **SMALL)
    return out


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    skimage_data = pytest.importorskip("skimage.data")
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()[60:160:2, 140:270:2]).save(path)  # 50x65 RGB
    return path


def _read(path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.float64)


def test_run_whole_image(sr_artifact, photo, tmp_path):
    out = tmp_path / "out.png"
    code, stdout, stderr = run_cli("run", sr_artifact, "--input", photo, "--output", out, "--threads", "2")
    assert code == 0, stderr
    assert "wrote" in stdout and _read(out).shape == (100, 130, 3)
    # exported without a checkpoint: the image is of random weights, and the user is told so (last)
    assert stderr.strip().splitlines()[-1].startswith("note: swinir-lightweight-x2 has seeded random weights")
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


def test_tiled_agrees_with_whole_away_from_tile_borders(sr_artifact, photo, tmp_path):
    """Tiles of 32 overlapping 16 (3x3 tiles on a 50x65 photo, x2). More than 8 output pixels (4 input
    pixels) from any tile edge inside the image, tiled and whole-image results agree within 1/255 on
    average and 4/255 at the 99th percentile (measured: 0.23 and 1.2). Nearer the edges a tile lacks
    context the whole image has (SwinIR's shifted windows reach across them), which the cross-fade
    spreads out instead of leaving a seam."""
    from tdeploy.deploy.tasks.tiling import tiles

    whole, tiled = tmp_path / "whole.png", tmp_path / "tiled.png"
    assert run_cli("run", sr_artifact, "--input", photo, "--output", whole)[0] == 0
    code, _, stderr = run_cli("run", sr_artifact, "--input", photo, "--output", tiled, "--tile", "32",
                              "--overlap", "16", "--backend", "torch")
    assert code == 0, stderr
    diff = np.abs(_read(whole) - _read(tiled)).max(-1)
    H, W, margin = 50, 65, 8
    near = np.zeros((2 * H, 2 * W), bool)
    for top, left, h, w in tiles(H, W, 32, 16):
        for edge in (top, top + h):
            if 0 < edge < H:
                near[max(0, 2 * edge - margin) : 2 * edge + margin] = True
        for edge in (left, left + w):
            if 0 < edge < W:
                near[:, max(0, 2 * edge - margin) : 2 * edge + margin] = True
    away = diff[~near]
    assert away.size > 0.2 * diff.size
    assert away.mean() <= 1.0 and np.percentile(away, 99) <= 4.0


def test_gray_model_reads_color_input_as_gray(tmp_path, photo):
    out_dir = tmp_path / "dn"
    export("swinir-denoise-gray", out_dir, options=ExportOptions(), depths=(2,), embed_dim=24, num_heads=(2,))
    out = tmp_path / "dn.png"
    code, _, stderr = run_cli("run", out_dir, "--input", photo, "--output", out, "--tile", "40", "--overlap", "8")
    assert code == 0, stderr
    assert _read(out).shape == (50, 65)


def test_errors_are_one_line(sr_artifact, tmp_path, photo):
    code, _, stderr = run_cli("run", sr_artifact, "--input", tmp_path / "missing.png", "--output", tmp_path / "o.png")
    assert code == 2 and stderr.startswith("error: input image not found") and stderr.count("\n") == 1
    code, _, stderr = run_cli("run", sr_artifact, "--input", photo, "--output", tmp_path / "o.gif")
    assert code == 2 and "use a .png or .jpg" in stderr


def test_image_io_round_trip(tmp_path):
    img = np.random.default_rng(0).random((3, 9, 11)).astype(np.float32)
    path = write_image(tmp_path / "x.png", img)
    back = read_image(path, channels=3)
    assert back.shape == (3, 9, 11) and np.abs(back - img).max() <= 0.5 / 255 + 1e-6
    assert read_image(path, channels=1).shape == (1, 9, 11)
