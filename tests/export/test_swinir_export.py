"""One SwinIR ONNX with dynamic height/width runs at sizes that are not whole windows; validate on it."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tdeploy.artifact.folder import open_artifact
from tdeploy.deploy.evaluate.report import write_validation_report
from tdeploy.deploy.evaluate.validate import validate
from tdeploy.export import ExportOptions, export
from tdeploy.export.onnx_export import build_model

SMALL = dict(depths=(2, 2))


@pytest.fixture(scope="module")
def swinir_artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("swinir") / "swinir-lightweight-x4"
    export("swinir-lightweight-x4", out, options=ExportOptions(), **SMALL)
    return out


@pytest.mark.parametrize("shape", [(1, 64, 64), (1, 37, 53), (2, 120, 90)])
def test_ort_matches_torch_at_any_size(swinir_artifact, shape):
    batch, h, w = shape
    model = build_model("swinir-lightweight-x4", None, SMALL)
    x = torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(h * w))
    with torch.no_grad():
        ref = model(x).numpy()
    session = ort.InferenceSession(str(swinir_artifact / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixel_values": x.numpy()})[0]
    assert got.shape == (batch, 3, 4 * h, 4 * w)
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=1e-4)


def test_validate_reports_psnr_ssim_and_image_panels(swinir_artifact, tmp_path):
    report = validate(open_artifact(swinir_artifact), backends=["ort"], threads=2)
    assert report.passed, report.summary()
    assert [c.size for c in report.cases] == ["64x64", "37x53"]
    for case in report.cases:
        assert case.metrics["psnr"] >= 60
        assert {"ssim", "psnr_y", "ssim_y"} <= set(case.metrics)
    written = write_validation_report(report, tmp_path / "report")
    html = next(p for p in written if p.suffix == ".html").read_text()
    assert len(report.images) == 2 and html.count("data:image/png;base64") >= 3


def test_gray_restoration_model_exports(tmp_path):
    """1-channel, no upsampler, window 7, img_range 255 (JPEG): the residual path through ORT."""
    out = tmp_path / "jpeg"
    export("swinir-jpeg-gray", out, options=ExportOptions(), depths=(2,), embed_dim=24, num_heads=(2,))
    model = build_model("swinir-jpeg-gray", None, dict(depths=(2,), embed_dim=24, num_heads=(2,)))
    x = torch.rand(1, 1, 30, 41)
    with torch.no_grad():
        ref = model(x).numpy()
    got = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"pixel_values": x.numpy()})[0]
    np.testing.assert_allclose(got, ref, atol=5e-5, rtol=1e-4)
