"""`deploy build-engine` refusals on a machine without datacenter TensorRT (exit 2, one line)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tdeploy.artifact.hashing import sha256_file
from tdeploy.artifact.sidecar import SIDECAR_NAME, GraphInfo, Sidecar
from tdeploy.export.onnx_export import export_graphs
from tdeploy.models import create_model
from tests.helpers import run_cli

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available(),
                                reason="TensorRT and a GPU are here: these tests check the refusals")


@pytest.fixture(scope="module")
def tiny_artifact(tmp_path_factory):
    """An artifact folder with a real (tiny) ONNX graph and a ViT sidecar, written by hand so these
    refusal tests do not depend on the exporter: the CLI opens and checks the ONNX first."""
    import onnx
    from onnx import TensorProto, helper

    out = tmp_path_factory.mktemp("vit")
    x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])
    graph = helper.make_graph([helper.make_node("ReduceMean", ["pixel_values", "axes"], ["logits"], keepdims=0)],
                              "tiny", [x], [y], [helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(out / "model.onnx"))
    with torch.device("meta"):
        model = create_model("vit")
    spec = model.export_spec()
    sidecar = Sidecar(model="vit", variant=model.variant_name, family="vit", opset=18,
                      graphs={"model": GraphInfo("model.onnx", sha256_file(out / "model.onnx"), spec.to_json())})
    (out / SIDECAR_NAME).write_text(sidecar.to_json())
    return out


def test_runtime_tensorrt_without_tensorrt_says_how_to_install(tiny_artifact):
    code, out, err = run_cli("build-engine", tiny_artifact, "--runtime", "tensorrt")
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "TensorRT (tensorrt) is not installed" in lines[0] and "pip install tensorrt" in lines[0]
    if importlib.util.find_spec("tensorrt_rtx") is not None:
        assert "--runtime tensorrt-rtx" in lines[0]  # the runtime that can build here
    assert not list(tiny_artifact.glob("*.engine"))


def test_bad_shapes_are_reported_before_tensorrt(tiny_artifact):
    code, _, err = run_cli("build-engine", tiny_artifact, "--shapes", "pixel_values:1x3x30x32/1x3x32x32/1x3x64x64")
    assert code == 2
    assert err.count("\n") == 1 and "multiple of 16" in err


def test_trt_backend_in_validate_refuses_in_one_line(tiny_artifact):
    code, _, err = run_cli("validate", tiny_artifact, "--backends", "trt", "--samples", "1")
    assert code == 2
    assert err.count("\n") == 1
    assert "no TensorRT engine" in err and "deploy build-engine" in err  # says how to build one
    engine = tiny_artifact / "model.engine"
    engine.write_bytes(b"an engine from elsewhere")
    try:
        code, _, err = run_cli("validate", engine, "--backends", "trt")
    finally:
        engine.unlink()
    assert code == 2 and err.count("\n") == 1 and "no model.engine.json beside" in err and "deploy build-engine" in err


def test_meta_sidecar_helper_is_consistent():
    with torch.device("meta"):
        model = create_model("vit")
    graphs = {g: GraphInfo(f"{g}.onnx", "0", s.to_json()) for g, (_, s) in export_graphs(model).items()}
    sc = Sidecar(model="vit", variant=model.variant_name, family="vit", graphs=graphs, opset=18)
    assert Sidecar.from_json(sc.to_json()).graphs.keys() == graphs.keys()
