"""One Swin ONNX, exported once at 224 with dynamic batch/height/width, runs at other sizes in ORT."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from tdeploy.export import ExportOptions, export
from tdeploy.export.onnx_export import build_model

SMALL = dict(depths=(2, 2, 2, 2))  # every stage has a W-MSA and a SW-MSA block


@pytest.fixture(scope="module")
def swin_artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("swin") / "swin-t"
    export("swin-t", out, options=ExportOptions(), **SMALL)
    return out


def test_one_window_attention_node_per_block(swin_artifact):
    model = onnx.load(str(swin_artifact / "model.onnx"))
    nodes = [n for n in model.graph.node if n.domain == "tdeploy"]
    assert [n.op_type for n in nodes] == ["WindowAttention"] * sum(SMALL["depths"])
    assert {f.name for f in model.functions} >= {"WindowAttention"}
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


@pytest.mark.parametrize("shape", [(1, 224, 224), (2, 256, 256), (2, 192, 320), (1, 288, 288)])
def test_ort_matches_torch_at_any_size(swin_artifact, shape):
    batch, h, w = shape
    model = build_model("swin-t", None, SMALL)
    x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(h * w))
    with torch.no_grad():
        ref = model(x).numpy()
    session = ort.InferenceSession(str(swin_artifact / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixel_values": x.numpy()})[0]
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=1e-4)
    assert (got.argmax(-1) == ref.argmax(-1)).all()
