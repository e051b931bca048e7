"""Registry: names, aliases, errors that help, and the spec every variant exports with."""

from __future__ import annotations

import pytest
import torch

from tdeploy.errors import TdeployError
from tdeploy.models import create_model, get_entry, list_families, list_models, smallest_variant
from tdeploy.models.spec import ExportSpec


def test_family_aliases_name_their_default():
    families = list_families()
    assert families["vit"] == "vit-b16"
    for alias, variant in families.items():
        assert get_entry(alias).name == variant
        assert variant in list_models(alias)


def test_unknown_name_lists_close_ones():
    with pytest.raises(TdeployError, match=r"unknown model 'vit-s'.*vit-s16"):
        get_entry("vit-s")


@pytest.mark.parametrize("name", list_models())
def test_every_variant_builds_on_meta_with_a_spec_that_round_trips(name):
    with torch.device("meta"):
        model = create_model(name)
    spec = model.export_spec() if not hasattr(model, "export_graphs") else next(iter(model.export_graphs().values()))[1]
    assert spec.inputs and spec.outputs
    assert ExportSpec.from_json(spec.to_json()) == spec


def test_missing_checkpoint_is_one_line(tmp_path):
    with pytest.raises(TdeployError, match="checkpoint file not found") as info:
        create_model("vit-ti16", checkpoint=tmp_path / "nope.pth")
    assert "\n" not in str(info.value)


def test_checkpoint_of_another_size_names_keys_and_the_variant_that_fits(tmp_path):
    with torch.random.fork_rng():
        small = create_model("vit-s16", depth=12)
    path = tmp_path / "vit_small.pth"
    torch.save(small.state_dict(), path)
    with pytest.raises(TdeployError) as info:
        create_model("vit-ti16", checkpoint=path)
    msg = str(info.value)
    assert "does not fit vit-ti16" in msg and "wrong shape" in msg and "it fits vit-s16" in msg
    assert "\n" not in msg


def test_garbage_checkpoint_file(tmp_path):
    path = tmp_path / "bad.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(TdeployError, match="cannot read checkpoint"):
        create_model("vit-ti16", checkpoint=path)


def test_family_alias_with_checkpoint_picks_the_variant(tmp_path):
    source = create_model("vit-s16")
    path = tmp_path / "some_vit.pth"
    torch.save(source.state_dict(), path)
    model = create_model("vit", checkpoint=path)
    assert model.variant_name == "vit-s16"


def test_smallest_variant_has_the_fewest_parameters():
    def count(name):
        with torch.device("meta"):
            return sum(p.numel() for p in create_model(name).parameters())

    assert smallest_variant("vit") == "vit-ti16" and smallest_variant("swinir") == "swinir-lightweight-x2"
    for family in ("swin", "nat"):
        assert count(smallest_variant(family)) == min(count(n) for n in list_models(family))
