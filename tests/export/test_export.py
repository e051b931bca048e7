"""Export: the written artifact, its sidecar, dynamic axes, atomicity, and ORT parity at other shapes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from tdeploy.artifact.hashing import sha256_file
from tdeploy.errors import TdeployError
from tdeploy.export import ExportOptions, Sidecar, export
from tdeploy.export.onnx_export import build_model

SMALL_VIT = {"depth": 2}  # structure of vit-ti16, two blocks: fast enough for every test run


@pytest.fixture(scope="module")
def vit_artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("art") / "vit"
    export("vit-ti16", out, **SMALL_VIT)
    return out


def test_writes_onnx_and_sidecar(vit_artifact):
    files = sorted(p.name for p in vit_artifact.iterdir())
    assert files == ["model.json", "model.onnx"]
    sidecar = Sidecar.load(vit_artifact / "model.json")
    assert sidecar.variant == "vit-ti16" and sidecar.family == "vit" and sidecar.opset == 18
    assert sidecar.overrides == SMALL_VIT
    assert sidecar.main.sha256 == sha256_file(vit_artifact / "model.onnx")
    spec = sidecar.main.export_spec()
    assert spec.inputs[0].dynamic_axes() == {0: "batch", 2: "height", 3: "width"}
    raw = json.loads((vit_artifact / "model.json").read_text())
    assert raw["tdeploy_version"] and raw["torch_version"] and raw["checkpoint_sha256"] is None


def test_dynamic_axes_are_named_in_the_graph(vit_artifact):
    model = onnx.load(str(vit_artifact / "model.onnx"))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    onnx.checker.check_model(model, full_check=True)


@pytest.mark.parametrize("shape", [(1, 3, 224, 224), (3, 3, 256, 192), (2, 3, 32, 48)])
def test_ort_matches_torch_at_shapes_other_than_export(vit_artifact, shape):
    model = build_model("vit-ti16", None, SMALL_VIT)
    x = torch.randn(*shape)
    with torch.no_grad():
        ref = model(x).numpy()
    session = ort.InferenceSession(str(vit_artifact / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixel_values": x.numpy()})[0]
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=1e-4)


def test_static_export_fixes_the_shape(tmp_path):
    out = tmp_path / "static"
    export("vit-ti16", out, options=ExportOptions(dynamic_batch=False, dynamic_size=False, size=(64, 96)),
           **SMALL_VIT)
    model = onnx.load(str(out / "model.onnx"))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 96]


def test_checkpoint_hash_in_sidecar(tmp_path):
    model = build_model("vit-ti16", None, SMALL_VIT)
    ckpt = tmp_path / "w.pth"
    torch.save(model.state_dict(), ckpt)
    sidecar = export("vit-ti16", tmp_path / "a", checkpoint=ckpt, **SMALL_VIT)
    assert sidecar.checkpoint_sha256 == sha256_file(ckpt)


def test_bad_size_leaves_nothing_on_disk(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(TdeployError, match="multiples of 16"):
        export("vit-ti16", out, options=ExportOptions(size=(100, 100)), **SMALL_VIT)
    assert not out.exists()
    assert not list(tmp_path.glob(".never.staging-*"))


def test_failure_mid_export_leaves_nothing_half_written(tmp_path, monkeypatch):
    """An error after the ONNX is written (here: the ORT check) must not leave files at the destination."""
    import tdeploy.export.onnx_export as onnx_export

    def broken_check(*args, **kwargs):
        raise TdeployError("simulated failure after writing the graph")

    monkeypatch.setattr(onnx_export, "check_against_torch", broken_check)
    out = tmp_path / "half"
    with pytest.raises(TdeployError, match="simulated"):
        export("vit-ti16", out, **SMALL_VIT)
    assert not out.exists()
    assert not list(tmp_path.glob(".half.staging-*"))


def test_a_graph_past_the_protobuf_limit_keeps_its_weights_beside_it(tmp_path, monkeypatch):
    """Past 2 GiB (lowered here to 1 MB) the weights go to model.onnx.data: the export checks pass on it,
    ONNX Runtime runs it at another size, the sidecar hashes both files, a changed data file is refused,
    and TensorRT-RTX builds from it."""
    import importlib.util

    import tdeploy.artifact.onnx_file as onnx_file
    from tdeploy.artifact.folder import open_artifact
    from tdeploy.deploy.evaluate.validate import validate

    monkeypatch.setattr(onnx_file, "EXTERNAL_DATA_BYTES", 1 << 20)
    out = tmp_path / "big"
    sidecar = export("vit-ti16", out, **SMALL_VIT)
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.onnx", "model.onnx.data"]
    assert (out / "model.onnx").stat().st_size < (1 << 20) < (out / "model.onnx.data").stat().st_size
    assert sidecar.main.data_sha256 == sha256_file(out / "model.onnx.data")
    report = validate(open_artifact(out), backends=["ort"], sizes=[(48, 80)])
    assert report.passed, report.summary()

    if importlib.util.find_spec("tensorrt_rtx") is not None:
        from tests.helpers import run_cli

        code, _, err = run_cli("build-engine", out, "--runtime", "tensorrt-rtx", "--compute-capability", "8.9")
        assert code == 0, err

    data = bytearray((out / "model.onnx.data").read_bytes())
    data[100] ^= 0xFF
    (out / "model.onnx.data").write_bytes(bytes(data))
    with pytest.raises(TdeployError, match=r"model.onnx.data is not the graph model.json describes"):
        open_artifact(out)
