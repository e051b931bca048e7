"""Datacenter TensorRT end to end, per family: export a small variant, build its engine(s) with the QDP
plugins, validate against PyTorch.

Marked ``trt``: skipped with the reason where datacenter TensorRT or a GPU is absent (tests/conftest.py);
on a TensorRT machine they run for real (no mocks): the AOT attention plugins are registered, the ONNX is
parsed strongly typed, every tdeploy node becomes a plugin layer, the engine is built, checked against
its sidecar, and compared by ``deploy validate`` with the PyTorch model on CPU (the reference backend of
the attention ops, not the Triton kernel the engine embeds), in fp32 and, for two families, fp16 and int8.
"""

from __future__ import annotations

import json

import onnx
import pytest
import torch

from tdeploy.models import list_families, smallest_variant
from tests.helpers import random_images

FAMILIES = sorted(list_families())


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    return random_images(tmp_path_factory.mktemp("calib"), 6, 256, 256)


@pytest.mark.trt
@pytest.mark.parametrize("family, precision", [(f, "fp32") for f in FAMILIES]
                         + [("swin", "fp16"), ("nat", "fp16"), ("swin", "int8"), ("vit", "int8")])
def test_engine_matches_pytorch(family, precision, tmp_path, calib):
    from tdeploy.artifact.folder import open_artifact
    from tdeploy.deploy.evaluate.validate import validate
    from tdeploy.export import ExportOptions, export
    from tdeploy.tensorrt.build import BuildOptions, build_engine
    from tdeploy.tensorrt.sidecar import engine_sidecar_path

    variant = smallest_variant(family)
    out = tmp_path / variant
    export(variant, out, options=ExportOptions(precision=precision, calib=calib if precision == "int8" else None,
                                               calib_samples=6))
    art = open_artifact(out)
    cache = tmp_path / "cache"
    built = build_engine(art, None, BuildOptions(runtime="tensorrt", opt_level=1, cache_dir=str(cache),
                                                 timing_cache=str(tmp_path / "timing.cache")))
    engines = list(built) if isinstance(built, list) else [built]
    assert len(engines) == len(art.sidecar.graphs)
    for engine, info in zip(engines, art.sidecar.graphs.values()):
        meta = json.loads(engine_sidecar_path(engine).read_text())
        assert meta["gpu"]["compute_capability"] == list(torch.cuda.get_device_capability(0))
        assert meta["runtime"]["name"] == "tensorrt" and meta["precision"] == art.sidecar.precision
        nodes = {}
        for node in onnx.load(str(out / info.file)).graph.node:
            if node.domain == "tdeploy":
                nodes[node.op_type] = nodes.get(node.op_type, 0) + 1
        assert meta["layers"]["plugins"] == nodes  # every tdeploy node is a QDP plugin layer
        assert meta["plugin_form"] == ("qdp" if nodes else "none")
    assert (tmp_path / "timing.cache").stat().st_size > 0

    report = validate(art, backends=["trt"], batch=2)
    assert report.cases and report.passed, report.summary()

    # Same key: the second build comes from the cache instead of TensorRT.
    for engine in engines:
        engine.unlink()
    again = build_engine(art, None, BuildOptions(runtime="tensorrt", opt_level=1, cache_dir=str(cache)))
    for engine in (list(again) if isinstance(again, list) else [again]):
        assert json.loads(engine_sidecar_path(engine).read_text())["from_cache"]
