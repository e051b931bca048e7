"""TensorRT end to end, per family: export a small variant, build its engine(s), validate against PyTorch.

Marked ``trt``: skipped with the reason where TensorRT or a GPU is absent (tests/conftest.py); on a
TensorRT machine they run for real (no mocks): the AOT attention plugins are registered, the ONNX is
parsed strongly typed, the engine is built, checked against its sidecar, and compared with the model.
"""

from __future__ import annotations

import json

import pytest
import torch

from tdeploy.models import create_model, list_families, list_models

FAMILIES = sorted(list_families())


def smallest_variant(family: str) -> str:
    """The variant with the fewest parameters (counted on the meta device: no memory, no time)."""
    sizes = {}
    for name in list_models(family):
        with torch.device("meta"):
            model = create_model(name)
        sizes[name] = sum(p.numel() for p in model.parameters())
    return min(sizes, key=sizes.get)


@pytest.mark.trt
@pytest.mark.parametrize("family", FAMILIES)
def test_engine_matches_pytorch(family, tmp_path):
    from tdeploy.artifact.folder import open_artifact
    from tdeploy.deploy.evaluate.validate import validate
    from tdeploy.export import ExportOptions, export
    from tdeploy.tensorrt.build import BuildOptions, build_engine
    from tdeploy.tensorrt.sidecar import engine_sidecar_path

    variant = smallest_variant(family)
    out = tmp_path / variant
    export(variant, out, options=ExportOptions())
    art = open_artifact(out)
    cache = tmp_path / "cache"
    built = build_engine(art, None, BuildOptions(opt_level=1, cache_dir=str(cache),
                                                 timing_cache=str(tmp_path / "timing.cache")))
    engines = list(built) if isinstance(built, list) else [built]
    assert len(engines) == len(art.sidecar.graphs)
    for engine in engines:
        meta = json.loads(engine_sidecar_path(engine).read_text())
        assert meta["gpu"]["compute_capability"] == list(torch.cuda.get_device_capability(0))
        assert meta["precision"] == art.sidecar.precision and meta["plugins_hash"]
    assert (tmp_path / "timing.cache").stat().st_size > 0

    report = validate(art, backends=["trt"], batch=2)
    assert report.cases and report.passed, report.summary()

    # Same key: the second build comes from the cache instead of TensorRT.
    for engine in engines:
        engine.unlink()
    again = build_engine(art, None, BuildOptions(opt_level=1, cache_dir=str(cache)))
    for engine in (list(again) if isinstance(again, list) else [again]):
        assert json.loads(engine_sidecar_path(engine).read_text())["from_cache"]
