"""Optimization profiles from sidecars (every registered family) and --shapes overrides: pure, CPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tdeploy.artifact.folder import Artifact
from tdeploy.artifact.sidecar import GraphInfo, Sidecar
from tdeploy.artifact.spec import ExportSpec, InputSpec
from tdeploy.errors import TdeployError
from tdeploy.export.onnx_export import export_graphs
from tdeploy.models import create_model, list_families
from tdeploy.tensorrt.build import engine_paths
from tdeploy.tensorrt.profile import (
    DEFAULT_MAX_BATCH,
    IMAGE_AXES,
    derive_profile,
    format_profile,
    parse_shape_override,
)


def family_sidecar(family: str, **flags) -> Sidecar:
    """The sidecar `deploy export` would write for ``family`` (model built on the meta device: no weights)."""
    with torch.device("meta"):
        model = create_model(family)
    graphs = {g: GraphInfo(file=f"{g}.onnx", sha256="0" * 64, spec=spec.to_json())
              for g, (_, spec) in export_graphs(model).items()}
    return Sidecar(model=family, variant=model.variant_name, family=family, graphs=graphs, opset=18, **flags)


def vit_like_sidecar(**flags) -> Sidecar:
    spec = ExportSpec(
        inputs=(InputSpec("pixel_values", ("batch", 3, "height", "width"), example=(1, 3, 224, 224)),),
        outputs=("logits",), task="classification", metric="top1_agreement", size_multiple=16, min_size=16,
    )
    return Sidecar(model="vit", variant="vit-t", family="vit",
                   graphs={"model": GraphInfo("model.onnx", "0" * 64, spec.to_json())}, opset=18, **flags)


FAMILIES = sorted(list_families())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dynamic", [(True, True), (False, True), (True, False), (False, False)],
                         ids=["dynamic", "static-batch", "static-size", "static"])
def test_default_profile_of_every_family(family, dynamic):
    dynamic_batch, dynamic_size = dynamic
    sidecar = family_sidecar(family, dynamic_batch=dynamic_batch, dynamic_size=dynamic_size)
    for graph, info in sidecar.graphs.items():
        spec = info.export_spec()
        profile = derive_profile(sidecar, [], graph=graph)
        assert list(profile) == [i.name for i in spec.inputs]
        ranges: dict[str, tuple[int, int, int]] = {}
        for inp in spec.inputs:
            mn, op, mx = profile[inp.name]
            assert op == tuple(inp.example), "opt is the export shape"
            for axis, dim in enumerate(inp.shape):
                rng = (mn[axis], op[axis], mx[axis])
                assert 1 <= rng[0] <= rng[1] <= rng[2]
                if isinstance(dim, int):
                    assert rng == (dim, dim, dim)
                    continue
                assert ranges.setdefault(dim, rng) == rng, f"axis {dim} differs between inputs"
                static = (dim == "batch" and not dynamic_batch) or (dim in IMAGE_AXES and not dynamic_size)
                if static:
                    assert rng[0] == rng[2] == inp.example[axis]
                elif dim == "batch":
                    assert rng[0] == 1 and rng[2] == max(DEFAULT_MAX_BATCH, inp.example[axis])
                elif dim in IMAGE_AXES:
                    for v in rng:
                        assert v % spec.size_multiple == 0 and v >= spec.min_size
                    assert rng[2] >= 2 * inp.example[axis] - spec.size_multiple
                else:
                    assert rng[2] > rng[1] or rng[2] == spec.extra.get("max_len")
        assert format_profile(profile).count("/") == 2 * len(spec.inputs)


def test_named_axes_agree_across_graphs():
    sidecars = [family_sidecar(f) for f in FAMILIES]
    multi = [s for s in sidecars if len(s.graphs) > 1]
    if not multi:
        pytest.skip("no multi-graph family registered yet")
    for sidecar in multi:
        seen: dict[str, tuple[int, int]] = {}
        for graph, info in sidecar.graphs.items():
            profile = derive_profile(sidecar, [], graph=graph)
            for inp in info.export_spec().inputs:
                for axis, dim in enumerate(inp.shape):
                    if isinstance(dim, str):
                        rng = (profile[inp.name][0][axis], profile[inp.name][2][axis])
                        assert seen.setdefault(dim, rng) == rng, f"{sidecar.family}: {dim} in {graph}"


def test_vit_defaults():
    profile = derive_profile(vit_like_sidecar(), [])
    assert profile == {"pixel_values": ((1, 3, 16, 16), (1, 3, 224, 224), (32, 3, 448, 448))}


def test_override_replaces_defaults():
    profile = derive_profile(vit_like_sidecar(), ["pixel_values:1x3x224x224/8x3x224x224/32x3x384x384"])
    assert profile["pixel_values"] == ((1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 384, 384))
    fixed = derive_profile(vit_like_sidecar(), ["pixel_values:4x3x256x256"])
    assert fixed["pixel_values"] == ((4, 3, 256, 256),) * 3


@pytest.mark.parametrize("text, words", [
    ("pixel_values", "write input:min/opt/max"),
    ("pixel_values:1x3x224x224/8x3x224x224", "write input:min/opt/max"),
    ("pixel_values:1x3xAx224/1x3x224x224/1x3x224x224", "write input:min/opt/max"),
    ("pixel_values:0x3x224x224/1x3x224x224/1x3x224x224", "positive integer"),
    ("pixels:1x3x224x224/1x3x224x224/1x3x224x224", "no input 'pixels' (inputs: pixel_values)"),
    ("pixel_values:1x3x224/1x3x224/1x3x224", "has 4 dimensions"),
    ("pixel_values:8x3x224x224/1x3x224x224/32x3x224x224", "min <= opt <= max"),
    ("pixel_values:1x3x200x224/1x3x224x224/1x3x224x224", "multiple of 16"),
    ("pixel_values:1x4x224x224/1x4x224x224/1x4x224x224", "is fixed at 3"),
    ("pixel_values:1x3x224x224/1x3x224x224/1x3x8192x224", "above the 4096"),
    ("decoder:pixel_values:1x3x224x224", "no graph 'decoder'"),
])
def test_override_errors_are_one_line(text, words):
    with pytest.raises(TdeployError) as info:
        derive_profile(vit_like_sidecar(), [text])
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_static_export_refuses_other_sizes():
    sidecar = vit_like_sidecar(dynamic_size=False)
    with pytest.raises(TdeployError, match="exported with a static height"):
        derive_profile(sidecar, ["pixel_values:1x3x224x224/1x3x224x224/1x3x256x224"])
    ok = derive_profile(sidecar, ["pixel_values:1x3x224x224/4x3x224x224/16x3x224x224"])
    assert ok["pixel_values"][2] == (16, 3, 224, 224)


def test_parse_shape_override():
    assert parse_shape_override("x:1x2/3x4/5x6") == (None, "x", ((1, 2), (3, 4), (5, 6)))
    assert parse_shape_override("encoder:x:2x3") == ("encoder", "x", ((2, 3),) * 3)


def _two_input_sidecar() -> Sidecar:
    spec = ExportSpec(
        inputs=(InputSpec("tokens", ("batch", "seq"), (2, 8), dtype="int64", kind="tokens"),
                InputSpec("mask", ("batch", "seq"), (2, 8), dtype="bool", kind="mask")),
        outputs=("out",), task="features", metric="cosine", extra={"axis_bounds": {"seq": [4, 64]}},
    )
    return Sidecar(model="t", variant="t", family="t", graphs={"model": GraphInfo("model.onnx", "0", spec.to_json())},
                   opset=18)


def test_shared_axes_follow_an_override_and_conflicts_are_refused():
    sidecar = _two_input_sidecar()
    default = derive_profile(sidecar, [])
    assert default["tokens"] == ((1, 4), (2, 8), (32, 64))  # axis_bounds from the spec
    profile = derive_profile(sidecar, ["tokens:1x1/4x16/8x256"])
    assert profile["mask"] == profile["tokens"] == ((1, 1), (4, 16), (8, 256))
    with pytest.raises(TdeployError, match="inputs sharing an axis need the same range"):
        derive_profile(sidecar, ["tokens:1x1/4x16/8x256", "mask:1x1/4x16/8x128"])


def test_multi_graph_override_reaches_every_graph():
    sidecars = [family_sidecar(f) for f in FAMILIES]
    multi = next((s for s in sidecars if len(s.graphs) > 1), None)
    if multi is None:
        pytest.skip("no multi-graph family registered yet")
    graphs = list(multi.graphs)
    first = multi.graphs[graphs[0]].export_spec().inputs[0]
    assert "batch" in first.shape
    mn = tuple(1 if d == "batch" else e for d, e in zip(first.shape, first.example))
    mx = tuple(4 if d == "batch" else e for d, e in zip(first.shape, first.example))
    override = f"{first.name}:{'x'.join(map(str, mn))}/{'x'.join(map(str, first.example))}/{'x'.join(map(str, mx))}"
    for graph in graphs:
        profile = derive_profile(multi, [override], graph=graph)
        for inp in multi.graphs[graph].export_spec().inputs:
            if inp.shape and inp.shape[0] == "batch":
                assert profile[inp.name][2][0] == 4, (graph, inp.name)


def test_engine_paths(tmp_path):
    single = Artifact(root=tmp_path, sidecar=vit_like_sidecar(), onnx=tmp_path / "model.onnx")
    assert engine_paths(single) == {"model": tmp_path / "model.engine"}
    assert engine_paths(single, tmp_path / "x" / "vit.engine") == {"model": tmp_path / "x" / "vit.engine"}
    sc = vit_like_sidecar()
    spec = sc.graphs["model"]
    multi_sc = dataclasses.replace(sc, graphs={"encoder": spec, "decoder": spec})
    multi = Artifact(root=tmp_path, sidecar=multi_sc, onnx=tmp_path / "encoder.onnx")
    assert engine_paths(multi) == {"encoder": tmp_path / "encoder.engine", "decoder": tmp_path / "decoder.engine"}
    assert engine_paths(multi, tmp_path / "out" / "model.engine") == {
        "encoder": tmp_path / "out" / "encoder.engine", "decoder": tmp_path / "out" / "decoder.engine"}
    assert engine_paths(multi, tmp_path / "engines")["decoder"] == tmp_path / "engines" / "decoder.engine"
