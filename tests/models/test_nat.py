"""NAT / DiNAT: registry and configs, the official checkpoint layout, parity with an independent
composition (the official forward re-written here on natten's ``na2d``; rpb by brute force), features mode.

The expected configs and key names below are written out from SHI-Labs/Neighborhood-Attention-Transformer
``classification/nat.py`` and ``classification/dinat.py`` (and NATTEN 0.14's ``NeighborhoodAttention2D``
for the attention keys and the small-map padding), not derived from tdeploy's code.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from tdeploy.errors import TdeployError
from tdeploy.models import ExportSpec, create_model, get_entry, list_models
from tdeploy.models.nat import NeighborhoodAttention2D

# name -> (embed_dim, depths, num_heads, mlp_ratio, layer_scale, published params in M)
OFFICIAL = {
    "nat-mini": (64, (3, 4, 6, 5), (2, 4, 8, 16), 3, None, 20),
    "nat-tiny": (64, (3, 4, 18, 5), (2, 4, 8, 16), 3, None, 28),
    "nat-small": (96, (3, 4, 18, 5), (3, 6, 12, 24), 2, 1e-5, 51),
    "nat-base": (128, (3, 4, 18, 5), (4, 8, 16, 32), 2, 1e-5, 90),
    "dinat-mini": (64, (3, 4, 6, 5), (2, 4, 8, 16), 3, None, 20),
    "dinat-tiny": (64, (3, 4, 18, 5), (2, 4, 8, 16), 3, None, 28),
    "dinat-small": (96, (3, 4, 18, 5), (3, 6, 12, 24), 2, None, 51),
    "dinat-base": (128, (3, 4, 18, 5), (4, 8, 16, 32), 2, 1e-5, 90),
}
# classification/dinat.py, ImageNet-1K 224 variants (kernel 7)
DINAT_MINI_DILATIONS = [[1, 8, 1], [1, 4, 1, 4], [1, 2, 1, 2, 1, 2], [1, 1, 1, 1, 1]]
DINAT_DILATIONS = [[1, 8, 1], [1, 4, 1, 4], [1, 2] * 9, [1, 1, 1, 1, 1]]
KERNEL = 7


def official_layout(embed, depths, heads, mlp_ratio, layer_scale, num_classes=1000, k=KERNEL):
    """Key -> shape of an official NAT/DiNAT classification state dict."""
    shapes = {
        "patch_embed.proj.0.weight": (embed // 2, 3, 3, 3),
        "patch_embed.proj.0.bias": (embed // 2,),
        "patch_embed.proj.1.weight": (embed, embed // 2, 3, 3),
        "patch_embed.proj.1.bias": (embed,),
        "patch_embed.norm.weight": (embed,),
        "patch_embed.norm.bias": (embed,),
    }
    for i, (depth, h) in enumerate(zip(depths, heads)):
        dim, hidden = embed * 2**i, int(embed * 2**i * mlp_ratio)
        for j in range(depth):
            p = f"levels.{i}.blocks.{j}."
            shapes |= {
                p + "norm1.weight": (dim,), p + "norm1.bias": (dim,),
                p + "attn.rpb": (h, 2 * k - 1, 2 * k - 1),
                p + "attn.qkv.weight": (3 * dim, dim), p + "attn.qkv.bias": (3 * dim,),
                p + "attn.proj.weight": (dim, dim), p + "attn.proj.bias": (dim,),
                p + "norm2.weight": (dim,), p + "norm2.bias": (dim,),
                p + "mlp.fc1.weight": (hidden, dim), p + "mlp.fc1.bias": (hidden,),
                p + "mlp.fc2.weight": (dim, hidden), p + "mlp.fc2.bias": (dim,),
            }
            if layer_scale is not None:
                shapes |= {p + "gamma1": (dim,), p + "gamma2": (dim,)}
        if i < len(depths) - 1:
            shapes |= {
                f"levels.{i}.downsample.reduction.weight": (2 * dim, dim, 3, 3),
                f"levels.{i}.downsample.norm.weight": (2 * dim,),
                f"levels.{i}.downsample.norm.bias": (2 * dim,),
            }
    top = embed * 2 ** (len(depths) - 1)
    return shapes | {"norm.weight": (top,), "norm.bias": (top,), "head.weight": (num_classes, top),
                     "head.bias": (num_classes,)}


def random_state_dict(layout, *, zero_rpb=False, seed=0):
    """Random tensors in the official layout: norms near 1, layer scales O(1) so every path matters."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in layout.items():
        t = torch.randn(shape, generator=gen)
        if key.endswith(("norm.weight", "norm1.weight", "norm2.weight", "gamma1", "gamma2")):
            t = 1 + 0.2 * t
        elif key.endswith("rpb"):
            t = torch.zeros(shape) if zero_rpb else 0.5 * t
        elif t.dim() > 1:
            t = t * (2.0 / shape[1]) ** 0.5 / (3 if len(shape) == 4 else 1)
        else:
            t = 0.1 * t
        sd[key] = t
    return sd


# ----------------------------------------------------------------------------------- registry, configs
@pytest.mark.parametrize("name", list(OFFICIAL))
def test_variant_matches_official_layout_and_size(name):
    embed, depths, heads, mlp, ls, params_m = OFFICIAL[name]
    with torch.device("meta"):
        model = create_model(name)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = official_layout(embed, depths, heads, mlp, ls)
    assert sorted(set(got) ^ set(expected)) == []
    assert got == expected
    assert round(sum(p.numel() for p in model.parameters()) / 1e6) == params_m
    assert model.cfg.kernel_size == KERNEL
    dil = [list(d) for d in model.cfg.block_dilations()]
    if name.startswith("dinat"):
        assert dil == (DINAT_MINI_DILATIONS if name == "dinat-mini" else DINAT_DILATIONS)
    else:
        assert all(d == 1 for level in dil for d in level)


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_spec_round_trips(name):
    with torch.device("meta"):
        model = create_model(name)
    spec = model.export_spec()
    assert ExportSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec.size_multiple == 32 and spec.outputs == ("logits",) and spec.task == "classification"
    assert spec.check_image_size(320, 192) is None and spec.check_image_size(224, 200) is not None


def test_aliases_and_families():
    assert get_entry("nat").name == "nat-tiny" and get_entry("dinat").name == "dinat-tiny"
    assert set(list_models("nat")) == {"nat-mini", "nat-tiny", "nat-small", "nat-base"}
    assert set(list_models("dinat")) == {"dinat-mini", "dinat-tiny", "dinat-small", "dinat-base"}


def test_dinat_depth_override_keeps_the_schedule_and_bad_dilations_fail():
    with torch.device("meta"):
        model = create_model("dinat-tiny", depths=[2, 2, 3, 1])
        assert model.cfg.dilations == ((1, 8), (1, 4), (1, 2, 1), (1,))
        with pytest.raises(TdeployError, match="one dilation per block"):
            create_model("nat-mini", dilations=((1,), (1,), (1,), (1,)))


# ----------------------------------------------------------------------------------- checkpoints
def test_official_checkpoint_loads_through_the_family_alias(tmp_path):
    layout = official_layout(*OFFICIAL["nat-mini"][:5])
    sd = random_state_dict(layout)
    path = tmp_path / "nat_mini.pth"
    torch.save(sd, path)
    model = create_model("nat", checkpoint=path)  # the alias picks the variant from the file
    assert model.variant_name == "nat-mini"
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    model = create_model("dinat", checkpoint=path)  # same keys: the name used decides NAT vs DiNAT
    assert model.variant_name == "dinat-mini" and model.cfg.dilations[0] == (1, 8, 1)


def test_layer_scale_checkpoint_and_wrong_variant_error(tmp_path):
    overrides = dict(depths=(1, 1, 1, 1), embed_dim=32, num_heads=(1, 2, 4, 8))
    sd = random_state_dict(official_layout(32, (1, 1, 1, 1), (1, 2, 4, 8), 2, 1e-5))
    path = tmp_path / "small_like.pth"
    torch.save({"model": sd, "epoch": 3}, path)  # training-script nesting
    model = create_model("nat-small", checkpoint=path, **overrides)
    assert torch.equal(model.levels[0].blocks[0].gamma1, sd["levels.0.blocks.0.gamma1"])
    with pytest.raises(TdeployError, match="unexpected: .*gamma"):
        create_model("nat-mini", checkpoint=path, **overrides)


# ----------------------------------------------------------------------------------- parity
def official_forward(sd, depths, heads, dilations, x, k=KERNEL):
    """The official NAT/DiNAT classification forward, written from the SHI-Labs code, reading the official
    keys; attention as NATTEN 0.14's module (pad x to k*d before qkv, crop after) with natten.na2d
    (current release, no rpb: the state dict's rpb must be zero)."""
    natten = pytest.importorskip("natten")

    def ln(t, p):
        return F.layer_norm(t, t.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], 1e-5)

    x = F.conv2d(x, sd["patch_embed.proj.0.weight"], sd["patch_embed.proj.0.bias"], stride=2, padding=1)
    x = F.conv2d(x, sd["patch_embed.proj.1.weight"], sd["patch_embed.proj.1.bias"], stride=2, padding=1)
    x = ln(x.permute(0, 2, 3, 1), "patch_embed.norm")
    for i, depth in enumerate(depths):
        for j in range(depth):
            p, d = f"levels.{i}.blocks.{j}.", dilations[i][j]
            B, H, W, C = x.shape
            h = ln(x, p + "norm1")
            h = F.pad(h, (0, 0, 0, max(0, k * d - W), 0, max(0, k * d - H)))
            Hp, Wp = h.shape[1:3]
            qkv = F.linear(h, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
            q, kk, v = qkv.reshape(B, Hp, Wp, 3, heads[i], C // heads[i]).unbind(3)
            a = natten.na2d(q.contiguous(), kk.contiguous(), v.contiguous(), kernel_size=k, dilation=d)
            a = F.linear(a.reshape(B, Hp, Wp, C)[:, :H, :W], sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
            x = x + sd.get(p + "gamma1", 1.0) * a
            m = F.gelu(F.linear(ln(x, p + "norm2"), sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"]))
            x = x + sd.get(p + "gamma2", 1.0) * F.linear(m, sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
        if i < len(depths) - 1:
            x = F.conv2d(x.permute(0, 3, 1, 2), sd[f"levels.{i}.downsample.reduction.weight"], stride=2, padding=1)
            x = ln(x.permute(0, 2, 3, 1), f"levels.{i}.downsample.norm")
    x = ln(x, "norm").flatten(1, 2).mean(1)
    return F.linear(x, sd["head.weight"], sd["head.bias"])


PARITY = {
    # 64x96: levels at 16x24 .. 2x3, so levels 2-3 (NAT) and every dilated block (DiNAT) take the padding path
    "nat": ("nat-mini", dict(depths=(2, 2, 2, 2), embed_dim=32, num_heads=(1, 2, 4, 8)), None),
    "dinat-ls": ("dinat-mini", dict(depths=(2, 2, 2, 2), embed_dim=32, num_heads=(1, 2, 4, 8), layer_scale=1e-5), 1e-5),
}


@pytest.mark.parametrize("case", list(PARITY))
def test_model_equals_the_official_forward_with_natten(case, tmp_path):
    name, overrides, ls = PARITY[case]
    sd = random_state_dict(official_layout(32, overrides["depths"], overrides["num_heads"], 3, ls), zero_rpb=True)
    path = tmp_path / "w.pth"
    torch.save(sd, path)
    model = create_model(name, checkpoint=path, **overrides)
    dil = model.cfg.block_dilations()
    assert any(d > 1 for level in dil for d in level) == name.startswith("dinat")
    for size in [(64, 96), (128, 160)]:
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            got, ref = model(x), official_forward(sd, overrides["depths"], overrides["num_heads"], dil, x)
        torch.testing.assert_close(got, ref, atol=2e-4, rtol=2e-4)


def bruteforce_na(qkv, rpb, heads, k, d):
    """Neighborhood attention by definition, one query at a time (float64): each pixel attends to the k
    pixels of its own dilation group nearest to it along each axis (window shifted inward at borders);
    rpb indexed by the relative offset in dilated steps."""

    def window(i, length):
        group = list(range(i % d, length, d))
        p = group.index(i)
        s = min(max(p - k // 2, 0), len(group) - k)
        return group[s:s + k], [k - 1 + s + a - p for a in range(k)]

    B, H, W, C3 = qkv.shape
    hd = C3 // (3 * heads)
    q, key, v = qkv.double().reshape(B, H, W, 3, heads, hd).unbind(3)
    out = torch.zeros(B, H, W, heads, hd, dtype=torch.float64)
    for i in range(H):
        rows, brows = window(i, H)
        for j in range(W):
            cols, bcols = window(j, W)
            kn, vn = key[:, rows][:, :, cols], v[:, rows][:, :, cols]  # (B, k, k, heads, hd)
            logits = torch.einsum("bnd,bxynd->bnxy", q[:, i, j], kn) * hd**-0.5
            logits = logits + rpb.double()[:, brows][:, :, bcols]
            attn = logits.flatten(2).softmax(-1).reshape_as(logits)
            out[:, i, j] = torch.einsum("bnxy,bxynd->bnd", attn, vn)
    return out.reshape(B, H, W, C3 // 3)


@pytest.mark.parametrize("k, d, hw", [(3, 1, (5, 7)), (3, 2, (5, 9)), (5, 2, (11, 12))])
def test_attention_layer_with_rpb_and_small_map_padding(k, d, hw):
    """The layer with a random rpb and qkv bias; maps smaller than k*d are padded before qkv (so the
    padded pixels carry the qkv bias), as NATTEN 0.14's module does."""
    torch.manual_seed(0)
    layer = NeighborhoodAttention2D(16, 2, k, d, qkv_bias=True).eval()
    with torch.no_grad():
        layer.rpb.normal_(std=0.5)
        layer.qkv.bias.normal_()
    x = torch.randn(2, *hw, 16)
    H, W = hw
    xp = F.pad(x, (0, 0, 0, max(0, k * d - W), 0, max(0, k * d - H)))
    with torch.no_grad():
        ref = bruteforce_na(layer.qkv(xp), layer.rpb, 2, k, d)[:, :H, :W].float()
        ref = layer.proj(ref)
        torch.testing.assert_close(layer(x), ref, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------- features mode
def test_features_mode_shapes_and_consistency_with_classification(tmp_path):
    overrides = dict(depths=(1, 1, 2, 1), embed_dim=32, num_heads=(1, 2, 4, 8))
    sd = random_state_dict(official_layout(32, overrides["depths"], overrides["num_heads"], 3, None))
    path = tmp_path / "w.pth"
    torch.save(sd, path)
    clf = create_model("dinat-mini", checkpoint=path, **overrides)
    feat = create_model("dinat-mini", checkpoint=path, features=True, **overrides)  # norm/head keys dropped
    assert not hasattr(feat, "head") and not hasattr(feat, "norm")
    spec = feat.export_spec()
    assert spec.outputs == ("feat_s4", "feat_s8", "feat_s16", "feat_s32")
    assert (spec.task, spec.metric) == ("features", "cosine")
    x = torch.randn(2, 3, 320, 192)
    with torch.no_grad():
        maps = feat(x)
        logits = clf(x)
    assert [tuple(m.shape) for m in maps] == [(2, 32 * 2**i, 320 // 2 ** (i + 2), 192 // 2 ** (i + 2)) for i in range(4)]
    # s32 is the last level's output before the final norm: norm + pool + head gives the logits
    pooled = F.layer_norm(maps[3].permute(0, 2, 3, 1), (256,), sd["norm.weight"], sd["norm.bias"]).mean((1, 2))
    torch.testing.assert_close(F.linear(pooled, sd["head.weight"], sd["head.bias"]), logits, atol=1e-5, rtol=1e-5)
    # s16 is level 2's output BEFORE its downsampler: downsampling it yields level 3's input
    with torch.no_grad():
        down = clf.levels[2].downsample(maps[2].permute(0, 2, 3, 1))
        torch.testing.assert_close(clf.levels[3].run_blocks(down).permute(0, 3, 1, 2), maps[3], atol=1e-5, rtol=1e-5)
