"""Swin Transformer against timm: same parameter names and shapes, same logits, any size divisible by 32."""

from __future__ import annotations

import re

import pytest
import torch

from tdeploy.errors import TdeployError
from tdeploy.models import create_model, get_entry, list_models
from tests.helpers import perturb_parameters

timm = pytest.importorskip("timm")
from timm.models.swin_transformer import SwinTransformer as TimmSwin  # noqa: E402

# registry variant -> timm model name (shapes are compared on the meta device, full size)
TIMM_NAMES = {
    "swin-t": "swin_tiny_patch4_window7_224",
    "swin-s": "swin_small_patch4_window7_224",
    "swin-b": "swin_base_patch4_window7_224",
    "swin-b-384": "swin_base_patch4_window12_384",
}
SMALL = dict(depths=(2, 2, 2, 2))  # structure of swin-t, 2 blocks per stage: W-MSA + SW-MSA everywhere


def _timm_small(seed: int = 0) -> TimmSwin:
    torch.manual_seed(seed)
    model = TimmSwin(img_size=224, embed_dim=96, depths=SMALL["depths"], num_heads=(3, 6, 12, 24), window_size=7,
                     dynamic_img_size=True, strict_img_size=False).eval()
    return perturb_parameters(model, 0.05)  # so that norms, biases and bias tables all matter


def test_family_alias_and_variants():
    assert get_entry("swin").name == "swin-t"
    assert set(TIMM_NAMES) == set(list_models("swin"))


@pytest.mark.parametrize("name", list_models("swin"))
def test_state_dict_equals_timm(name):
    with torch.device("meta"):
        ours = create_model(name)
        ref = timm.create_model(TIMM_NAMES[name], pretrained=False)
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()
                  if not k.endswith(("relative_position_index", "attn_mask"))}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == ref_shapes


@pytest.fixture(scope="module")
def pair():
    ref = _timm_small()
    ours = create_model("swin-t", **SMALL)
    ours.load_state_dict(ours.checkpoint_filter(ref.state_dict()))
    return ref, ours


@pytest.mark.parametrize("hw", [(224, 224), (256, 256), (192, 320), (288, 288), (64, 96)])
def test_logits_equal_timm_at_any_size(pair, hw):
    ref, ours = pair
    x = torch.randn(2, 3, *hw, generator=torch.Generator().manual_seed(hw[0] + hw[1]))
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == (2, 1000)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_the_shift_mask_matters(pair):
    """Guard against a parity test that would pass with the mask ignored."""
    ref, ours = pair
    x = torch.randn(1, 3, 192, 320)
    with torch.no_grad():
        want = ref(x)
        saved = ours.layers[0].shift
        ours.layers[0].shift = (0, 0)  # the stage builds no mask: shifted blocks run unmasked
        try:
            got = ours(x)
        finally:
            ours.layers[0].shift = saved
    assert (got - want).abs().max() > 1e-3


def test_stage_windows_follow_timm():
    cfg = create_model("swin-t", **SMALL).cfg
    assert [cfg.stage_window(i) for i in range(4)] == [((7, 7), (3, 3))] * 3 + [((7, 7), (0, 0))]
    cfg384 = get_entry("swin-b-384").build().cfg
    assert cfg384.stage_window(3) == ((12, 12), (0, 0)) and cfg384.stage_window(2) == ((12, 12), (6, 6))


def test_timm_checkpoint_file_loads_unchanged(tmp_path, pair):
    ref, _ = pair
    path = tmp_path / "timm_swin.pth"
    torch.save(ref.state_dict(), path)
    model = create_model("swin-t", checkpoint=path, **SMALL)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=1e-5)


def _microsoft_layout(sd: dict[str, torch.Tensor], ref: TimmSwin) -> dict:
    """timm keys -> the original release's: downsample at the end of the previous stage, ``head``,
    and the buffers it saved."""
    out = {}
    for k, v in sd.items():
        k = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", k)
        out[k.replace("head.fc.", "head.")] = v
    for name, module in ref.named_modules():
        if hasattr(module, "relative_position_index"):
            out[f"{name}.relative_position_index"] = module.relative_position_index
    out["layers.0.blocks.1.attn_mask"] = torch.zeros(64, 49, 49)
    return {"model": out}


def test_microsoft_release_file_loads(tmp_path, pair):
    ref, _ = pair
    path = tmp_path / "swin_tiny_patch4_window7_224.pth"
    torch.save(_microsoft_layout(ref.state_dict(), ref), path)
    model = create_model("swin-t", checkpoint=path, **SMALL)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=1e-5)


def test_wrong_variant_says_what_fits(tmp_path):
    with torch.device("meta"):
        sd = create_model("swin-s").state_dict()
    path = tmp_path / "s.pth"
    torch.save({k: torch.zeros(v.shape) for k, v in sd.items()}, path)
    with pytest.raises(TdeployError, match="fits swin-s"):
        create_model("swin-t", checkpoint=path)


def test_export_spec():
    spec = create_model("swin-t", **SMALL).export_spec()
    assert spec.size_multiple == 32 and spec.task == "classification"
    assert spec.inputs[0].shape == ("batch", 3, "height", "width") and spec.inputs[0].example == (1, 3, 224, 224)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models("swin"))
def test_full_size_logits_equal_timm(name):
    torch.manual_seed(0)
    ref = timm.create_model(TIMM_NAMES[name], pretrained=False, dynamic_img_size=True, strict_img_size=False).eval()
    ours = create_model(name)
    ours.load_state_dict(ours.checkpoint_filter(ref.state_dict()))
    size = ours.cfg.img_size
    for hw in [(size, size), (size + 32, size - 32)]:
        x = torch.randn(1, 3, *hw)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), ref(x), atol=1e-4, rtol=1e-4)
