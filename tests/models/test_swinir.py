"""SwinIR against spandrel's copy of the official architecture; official file layouts; variant detection."""

from __future__ import annotations

import math

import pytest
import torch

from tdeploy.errors import TdeployError
from tdeploy.models import create_model, get_entry, list_models, matching_variants
from tests.helpers import perturb_parameters

pytest.importorskip("spandrel")
from spandrel.architectures.SwinIR import SwinIR as OfficialSwinIR  # noqa: E402


def official_kwargs(name: str, **overrides) -> dict:
    """The official constructor arguments of a registered variant (what main_test_swinir.py passes)."""
    with torch.device("meta"):
        c = create_model(name, **overrides).cfg
    return dict(upscale=c.upscale, in_chans=c.in_chans, img_size=c.img_size, window_size=c.window_size,
                img_range=c.img_range, depths=list(c.depths), embed_dim=c.embed_dim, num_heads=list(c.num_heads),
                mlp_ratio=c.mlp_ratio, upsampler=c.upsampler, resi_connection=c.resi_connection)


def official_model(name: str, seed: int = 0, **overrides) -> OfficialSwinIR:
    torch.manual_seed(seed)
    model = OfficialSwinIR(**official_kwargs(name, **overrides)).eval()
    return perturb_parameters(model, 0.02)  # so that norms, biases and bias tables all matter


def official_state_dict_shapes(name: str) -> dict[str, torch.Tensor]:
    """A zero state dict with the official file's keys and shapes (buffers included), on meta."""
    with torch.device("meta"):
        model = create_model(name)
    c = model.cfg
    sd = dict(model.state_dict())
    n = c.window_size**2
    n_win = (c.img_size // c.window_size) ** 2
    for i, depth in enumerate(c.depths):
        for j in range(depth):
            prefix = f"layers.{i}.residual_group.blocks.{j}"
            sd[f"{prefix}.attn.relative_position_index"] = torch.empty(n, n, device="meta")
            if j % 2:
                sd[f"{prefix}.attn_mask"] = torch.empty(n_win, n, n, device="meta")
    return sd


def test_family_alias():
    assert get_entry("swinir").name == "swinir-classical-x4"
    assert len(list_models("swinir")) == 13


@pytest.mark.parametrize("name", list_models("swinir"))
def test_official_layout_detects_exactly_its_variant(name):
    """Every full-size variant's official file layout fits exactly that variant (no ambiguity)."""
    assert matching_variants(official_state_dict_shapes(name), "swinir") == [name]


# Variants covering every upsampler, both channel counts, window 7 and img_range 255, 3conv;
# reduced to 2 RSTBs of 2 blocks (the structure is the same, the test 10x faster).
PARITY = ["swinir-classical-x2", "swinir-classical-x3", "swinir-lightweight-x4", "swinir-real-x4",
          "swinir-real-x4-large", "swinir-denoise-gray", "swinir-jpeg-color"]
SMALL = dict(depths=(2, 2))


@pytest.mark.parametrize("name", list_models("swinir"))
def test_state_dict_equals_official(name):
    ref = OfficialSwinIR(**official_kwargs(name, **SMALL))
    with torch.device("meta"):
        ours = create_model(name, **SMALL)
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()
            if not k.endswith(("relative_position_index", "attn_mask"))}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == want


@pytest.mark.parametrize("name", PARITY)
def test_output_equals_official(name):
    ref = official_model(name, **SMALL)
    ours = create_model(name, **SMALL)
    ours.load_state_dict(ours.checkpoint_filter(ref.state_dict()))
    c = ours.cfg
    x = torch.rand(1, c.in_chans, 19, 27, generator=torch.Generator().manual_seed(1))  # not whole windows
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == (1, c.in_chans, 19 * c.upscale, 27 * c.upscale)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


def test_official_file_loads_and_is_detected(tmp_path):
    """A full-size official file (lightweight x2, under params_ema) through the family alias."""
    ref = official_model("swinir-lightweight-x2")
    path = tmp_path / "002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth"
    torch.save({"params_ema": ref.state_dict()}, path)
    model = create_model("swinir", checkpoint=path)
    assert model.variant_name == "swinir-lightweight-x2"
    x = torch.rand(1, 3, 16, 21)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=2e-5, rtol=1e-4)


def test_file_that_fits_nothing_says_what_it_found(tmp_path):
    ref = official_model("swinir-lightweight-x2", **SMALL)
    path = tmp_path / "odd.pth"
    torch.save({"params": ref.state_dict()}, path)
    with pytest.raises(TdeployError) as info:
        create_model("swinir", checkpoint=path)
    msg = str(info.value)
    assert "\n" not in msg and "fits no swinir variant" in msg and "tensors" in msg


def test_export_spec():
    sr = create_model("swinir-lightweight-x4", **SMALL).export_spec()
    assert sr.task == "super_resolution" and sr.metric == "psnr" and sr.size_multiple == 1
    assert sr.inputs[0].low == 0.0 and sr.inputs[0].high == 1.0 and not sr.mean
    assert sr.metric_threshold["fp32"] >= 60 and sr.metric_threshold["fp16"] >= 40
    dn = create_model("swinir-denoise-gray", **SMALL).export_spec()
    assert dn.task == "restoration" and dn.inputs[0].shape[1] == 1


def test_window_clamp_follows_official():
    cfg = create_model("swinir-jpeg-gray", **SMALL).cfg
    assert cfg.window() == ((7, 7), (3, 3)) and cfg.img_range == 255.0
    assert math.isclose(create_model("swinir-classical-x4", **SMALL).cfg.mlp_ratio, 2.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models("swinir"))
def test_full_size_output_equals_official(name):
    ref = official_model(name)
    ours = create_model(name)
    ours.load_state_dict(ours.checkpoint_filter(ref.state_dict()))
    x = torch.rand(1, ours.cfg.in_chans, 24, 20)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=5e-5, rtol=1e-4)
