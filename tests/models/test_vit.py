"""ViT against timm's VisionTransformer on the same weights, at the training size and others."""

from __future__ import annotations

import pytest
import torch

timm = pytest.importorskip("timm")

from tdeploy.models import create_model  # noqa: E402
from tests.helpers import perturb_parameters  # noqa: E402

PAIRS = [("vit-ti16", "vit_tiny_patch16_224"), ("vit-s16", "vit_small_patch16_224"),
         pytest.param(("vit-b16", "vit_base_patch16_224"), marks=pytest.mark.slow, id="vit-b16")]


@pytest.fixture(scope="module", params=PAIRS, ids=["vit-ti16", "vit-s16", "vit-b16"])
def timm_checkpoint(request, tmp_path_factory):
    ours, theirs = request.param
    torch.manual_seed(1)
    # timm's init has zero biases, unit LayerNorms and a ~1e-6 cls token: perturb every parameter.
    reference = perturb_parameters(timm.create_model(theirs, pretrained=False, dynamic_img_size=True).eval(), 0.05)
    path = tmp_path_factory.mktemp(ours) / f"{theirs}.pth"
    torch.save(reference.state_dict(), path)
    return ours, reference, path


@pytest.mark.parametrize("size", [(224, 224), (256, 192), (160, 160), (32, 48)])
def test_logits_equal_timm(timm_checkpoint, size):
    name, reference, path = timm_checkpoint
    model = create_model(name, checkpoint=path)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=1e-5)


def test_safetensors_checkpoint_loads(tmp_path):
    from safetensors.torch import save_file

    reference = perturb_parameters(timm.create_model("vit_tiny_patch16_224", pretrained=False).eval(), 0.05)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    model = create_model("vit-ti16", checkpoint=path)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=1e-5)


def test_nested_and_ddp_checkpoint_layouts(tmp_path):
    reference = perturb_parameters(timm.create_model("vit_tiny_patch16_224", pretrained=False).eval(), 0.05)
    wrapped = {"model": {f"module.{k}": v for k, v in reference.state_dict().items()}, "epoch": 3}
    path = tmp_path / "train_ckpt.pth"
    torch.save(wrapped, path)
    model = create_model("vit-ti16", checkpoint=path)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=1e-5)
