"""Tiling on its own: tile placement, cross-fade weights, exactness for local models."""

from __future__ import annotations

import numpy as np
import pytest

from tdeploy.deploy.tasks.tiling import axis_ramps, ramp, run_tiled, tile_starts, tiles


def test_tile_starts_cover_and_end_flush():
    assert tile_starts(100, 32, 8) == [0, 24, 48, 68]
    assert tile_starts(20, 32, 8) == [0]
    assert tile_starts(64, 32, 0) == [0, 32]
    with pytest.raises(ValueError):
        tile_starts(100, 32, 32)


@pytest.mark.parametrize("size,tile,overlap,scale", [(100, 32, 8, 1), (100, 32, 8, 4), (77, 20, 5, 2), (64, 32, 0, 3)])
def test_weights_sum_to_one_everywhere(size, tile, overlap, scale):
    total = np.zeros(scale * size)
    for start, w in axis_ramps(size, tile, overlap, scale).items():
        total[scale * start : scale * (start + tile)] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_ramp_shape():
    w = ramp(10, 3, 2)
    np.testing.assert_allclose(w[:3], [0.25, 0.5, 0.75])
    np.testing.assert_allclose(w[-2:], [2 / 3, 1 / 3])
    assert (w[3:8] == 1).all()


def test_tiles_are_full_size_inside_the_image():
    for top, left, h, w in tiles(50, 70, 16, 4):
        assert (h, w) == (16, 16) and top + h <= 50 and left + w <= 70


def _nearest_x2(x):  # a pointwise "model": tiling must reproduce it exactly
    return np.repeat(np.repeat(x * 0.5 + 0.25, 2, -1), 2, -2)


@pytest.mark.parametrize("tile,overlap", [(16, 4), (20, 0), (33, 12), (200, 8)])
def test_local_model_is_reproduced_exactly(tile, overlap):
    img = np.random.default_rng(0).random((3, 50, 70), dtype=np.float32)
    whole = run_tiled(img, _nearest_x2, tile=None, scale=2)
    tiled = run_tiled(img, _nearest_x2, tile=tile, overlap=overlap, scale=2)
    np.testing.assert_allclose(tiled, whole, atol=1e-6)


def test_progress_sees_every_tile():
    seen = []

    def progress(boxes):
        seen.extend(boxes)
        return boxes

    img = np.zeros((1, 40, 40), np.float32)
    run_tiled(img, lambda x: x, tile=16, overlap=4, progress=progress)
    assert len(seen) == len(tiles(40, 40, 16, 4)) == 9


def test_wrong_scale_is_reported():
    with pytest.raises(ValueError, match="expected x2"):
        run_tiled(np.zeros((1, 40, 40), np.float32), lambda x: x, tile=16, overlap=4, scale=2)
