"""FP16 / INT8 graphs: structure (islands, Q/DQ), ONNX Runtime runs, validation, calibration errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tdeploy.errors import TdeployError
from tdeploy.export.precision.calibration import calibration_feeds, load_image, read_token_lines
from tdeploy.export.precision.fp16 import convert_to_fp16
from tdeploy.export.precision.int8 import Int8Settings, LayerPolicy, check_qdq, quantize_int8
from tests.helpers import random_images, run_cli

ort = pytest.importorskip("onnxruntime")

VIT = dict(img_size=32, patch_size=4, depth=2, num_classes=10, embed_dim=64, num_heads=2)


def _run(model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def _toy_model() -> onnx.ModelProto:
    """x (N, 3, 8, 8) -> (x - mean) * 2 -> Conv -> flatten -> LayerNorm -> MatMul -> Softmax -> / 2 + 1."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.full((1, 3, 1, 1), 0.5, np.float32), "mean"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3, "conv_w"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32) * 0.1, "conv_b"),
        numpy_helper.from_array(np.ones(144, np.float32), "ln_s"),
        numpy_helper.from_array(np.zeros(144, np.float32), "ln_b"),
        numpy_helper.from_array(rng.standard_normal((144, 5)).astype(np.float32) * 0.1, "fc_w"),
        numpy_helper.from_array(rng.standard_normal((5, 6)).astype(np.float32) * 0.1, "fc2_w"),
        numpy_helper.from_array(np.array([0, -1], np.int64), "flat"),
    ]
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["xc"], name="sub_mean"),
        helper.make_node("Mul", ["xc", "two"], ["xs"], name="mul_range"),
        helper.make_node("Conv", ["xs", "conv_w", "conv_b"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "flat"], ["f"], name="flatten"),
        helper.make_node("LayerNormalization", ["f", "ln_s", "ln_b"], ["ln"], name="ln", axis=-1),
        helper.make_node("MatMul", ["ln", "fc_w"], ["h"], name="fc"),
        helper.make_node("Softmax", ["h"], ["p"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["p", "fc2_w"], ["o"], name="fc2"),
        helper.make_node("Div", ["o", "two"], ["od"], name="div_range"),
        helper.make_node("Add", ["od", "one"], ["y"], name="add_mean"),
    ]
    graph = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def _dtypes(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input,
                                                             *inferred.graph.output]}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    return types


# --- FP16 pass on a hand-built graph -----------------------------------------------------------------

@pytest.mark.parametrize("io_dtype", ["fp32", "fp16"])
def test_fp16_islands_and_io(io_dtype):
    model = _toy_model()
    fp16, report = convert_to_fp16(model, io_dtype=io_dtype)
    onnx.checker.check_model(fp16, full_check=True)
    types = _dtypes(fp16)
    nodes = {n.name: n for n in fp16.graph.node}
    want_io = TensorProto.FLOAT16 if io_dtype == "fp16" else TensorProto.FLOAT
    assert fp16.graph.input[0].type.tensor_type.elem_type == want_io
    assert fp16.graph.output[0].type.tensor_type.elem_type == want_io
    # heavy ops and their weights in FP16
    for name in ("conv", "fc", "fc2"):
        assert all(types[i] == TensorProto.FLOAT16 for i in nodes[name].input if i), name
    # islands: LayerNorm, Softmax, and the boundary arithmetic (mean/range before conv, after fc2)
    for name in ("ln", "softmax", "sub_mean", "mul_range", "div_range", "add_mean"):
        assert all(types[i] == TensorProto.FLOAT for i in nodes[name].input if i), name
    assert set(report.boundary_fp32) == {"sub_mean", "mul_range", "div_range", "add_mean"}
    assert report.fp32_nodes["LayerNormalization"] == 1 and report.fp32_nodes["Softmax"] == 1
    x = np.random.default_rng(1).random((2, 3, 8, 8), dtype=np.float32)
    ref = _run(model, {"x": x})[0]
    got = _run(fp16, {"x": x.astype(np.float16) if io_dtype == "fp16" else x})[0]
    np.testing.assert_allclose(got.astype(np.float32), ref, atol=5e-3, rtol=5e-3)


def test_fp16_clips_initializers_to_fp16_range():
    model = _toy_model()
    for init in model.graph.initializer:
        if init.name == "fc2_w":
            arr = numpy_helper.to_array(init).copy()
            arr[0, 0] = -1e9
            init.CopyFrom(numpy_helper.from_array(arr, "fc2_w"))
    fp16, _ = convert_to_fp16(model)
    w = next(numpy_helper.to_array(i) for i in fp16.graph.initializer if i.name.startswith("fc2_w"))
    assert w.dtype == np.float16 and np.isfinite(w).all() and w.min() == np.float16(-65504)


# --- INT8 pass on a hand-built graph -----------------------------------------------------------------

def test_int8_qdq_symmetric_per_channel_axes():
    model = _toy_model()
    rng = np.random.default_rng(2)
    feeds = [{"x": rng.random((1, 3, 8, 8), dtype=np.float32)} for _ in range(8)]
    policy = LayerPolicy(first_layer=True, last_layer=True)  # quantize everything with a weight
    q, report = quantize_int8(model, feeds, Int8Settings(method="max", policy=policy), progress=False)
    onnx.checker.check_model(q, full_check=True)
    counts = check_qdq(q)  # zero points int8 0, positive scales
    assert counts["per_channel"] == 3
    inits = {i.name: i for i in q.graph.initializer}
    dq_by_output = {n.output[0]: n for n in q.graph.node if n.op_type == "DequantizeLinear"}
    producers = {o: n for n in q.graph.node for o in n.output}
    for layer, axis, channels in (("conv", 0, 4), ("fc", 1, 5), ("fc2", 1, 6)):
        node = next(n for n in q.graph.node if n.name == layer)
        w_dq = dq_by_output[node.input[1]]
        assert next(a.i for a in w_dq.attribute if a.name == "axis") == axis
        assert numpy_helper.to_array(inits[w_dq.input[1]]).shape == (channels,)
        assert numpy_helper.to_array(inits[w_dq.input[0]]).dtype == np.int8
        x_dq = producers[node.input[0]]  # activations: per-tensor DQ <- Q
        assert x_dq.op_type == "DequantizeLinear" and numpy_helper.to_array(inits[x_dq.input[1]]).size == 1
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] in ("c", "h", "o") for n in q.graph.node), \
        "layer outputs must not be quantized"
    x = rng.random((4, 3, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(_run(q, {"x": x})[0], _run(model, {"x": x})[0], atol=0.05)
    assert report["calibration"] == {"method": "max", "samples": 8}


def test_int8_default_policy_keeps_first_last_and_attention_fp32():
    model = _toy_model()
    feeds = [{"x": np.random.default_rng(3).random((1, 3, 8, 8), dtype=np.float32)} for _ in range(4)]
    _, report = quantize_int8(model, feeds, Int8Settings(method="entropy"), progress=False)
    assert report["quantized_layers"] == ["fc"]
    assert set(report["excluded_layers"]) == {"conv", "fc2"}
    assert "first layer" in report["excluded_layers"]["conv"] and "last layer" in report["excluded_layers"]["fc2"]


# --- calibration data ---------------------------------------------------------------------------------

def _png(path, value=128, size=(40, 30), mode="RGB"):
    from PIL import Image

    Image.new(mode, size, value if mode == "L" else (value, value, value)).save(path)


def test_load_image_preprocesses_with_spec(tmp_path):
    _png(tmp_path / "a.png", 255, mode="L")
    arr = load_image(tmp_path / "a.png", 3, (16, 16), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert arr.shape == (1, 3, 16, 16) and arr.dtype == np.float32
    np.testing.assert_allclose(arr, 1.0, atol=1e-6)


def test_token_lines(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("5 6 7\n\n8,9\n")
    assert read_token_lines(f, 0, 32) == [[5, 6, 7], [8, 9]]
    f.write_text("5 99\n")
    with pytest.raises(TdeployError, match=r"t.txt:1: token id 99 is outside"):
        read_token_lines(f, 0, 32)


def _vit_graphs():
    from tdeploy.models import create_model

    model = create_model("vit-ti16", **VIT)
    return {"model": (model, model.export_spec())}


def test_calibration_errors(tmp_path):
    graphs = _vit_graphs()
    with pytest.raises(TdeployError, match="has no images"):
        calibration_feeds(graphs, tmp_path, 4)
    (tmp_path / "tokens.txt").write_text("1 2 3\n")
    with pytest.raises(TdeployError, match="is a file: image models calibrate on a folder"):
        calibration_feeds(graphs, tmp_path / "tokens.txt", 4)
    with pytest.raises(TdeployError, match="not found"):
        calibration_feeds(graphs, tmp_path / "missing", 4)
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(TdeployError, match="cannot be read"):
        calibration_feeds(graphs, tmp_path, 4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--precision", "int8"], "--precision int8 needs calibration data"),
        (["--precision", "fp16", "--calib", "x"], "--calib is for --precision int8"),
        (["--precision", "int8", "--io-dtype", "fp16", "--calib", "x"], "--io-dtype fp16 needs --precision fp16"),
        (["--precision", "int8", "--calib", "{empty}"], "has no images"),
        (["--precision", "int8", "--calib", "{tokens}"], "is a file: image models calibrate on a folder"),
        (["--precision", "int8", "--calib", "{empty}", "--calib-samples", "0"], "--calib-samples must be >= 1"),
    ],
)
def test_cli_precision_errors_are_one_line(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "tokens.txt").write_text("1 2 3\n")
    args = [a.format(empty=tmp_path / "empty", tokens=tmp_path / "tokens.txt") for a in args]
    code, out, err = run_cli("export", "vit-ti16", "--out", tmp_path / "out", *args)
    assert code == 2, (out, err)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
    assert not (tmp_path / "out").exists()


def test_cli_token_file_for_transformer_errors(tmp_path):
    pytest.importorskip("tdeploy.models.transformer")
    code, _, err = run_cli("export", "transformer-tiny", "--out", tmp_path / "o", "--precision", "int8",
                           "--calib", tmp_path)
    assert code == 2 and "is a folder: token models calibrate on a text file" in err


# --- exported ViT: FP16 / INT8 artifacts validate against FP32 PyTorch -----------------------------------

@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    return random_images(tmp_path_factory.mktemp("calib"), 6, 48, 40)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_vit_precision_export_validates(tmp_path, calib_dir, precision):
    from tdeploy.artifact.folder import open_artifact
    from tdeploy.deploy.evaluate.validate import validate
    from tdeploy.export.onnx_export import ExportOptions, export

    options = ExportOptions(precision=precision, calib=calib_dir if precision == "int8" else None, calib_samples=4)
    sidecar = export("vit-ti16", tmp_path / "a", options=options, **VIT)
    assert sidecar.precision == precision
    saved = json.loads((tmp_path / "a" / "model.json").read_text())
    info = saved["extra"]["precision"]["model"]
    model = onnx.load(str(tmp_path / "a" / "model.onnx"))
    ops = {n.op_type for n in model.graph.node}
    if precision == "fp16":
        assert info["fp32_islands"]["LayerNormalization"] == 5 and info["fp32_islands"]["Softmax"] == 2
        assert sum(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer) >= 8
        assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    else:
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        assert info["calibration"]["method"] == "entropy" and info["calibration"]["samples"] == 4
        assert any("patch embedding" in why for why in info["excluded_layers"].values())
        assert len(info["quantized_layers"]) == 8
        check_qdq(model)
    report = validate(open_artifact(tmp_path / "a"), backends=["ort"])
    assert report.precision == precision and report.passed, report.summary()


def test_vit_fp16_io_fp16(tmp_path):
    from tdeploy.export.onnx_export import ExportOptions, export

    export("vit-ti16", tmp_path / "a", options=ExportOptions(precision="fp16", io_dtype="fp16"), **VIT)
    model = onnx.load(str(tmp_path / "a" / "model.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    out = _run(model, {"pixel_values": np.zeros((1, 3, 32, 32), np.float16)})[0]
    assert out.dtype == np.float16 and out.shape == (1, 10)


def test_validate_feeds_an_fp16_io_artifact(tmp_path):
    """`deploy validate` on --io-dtype fp16: the ORT runner casts the FP32 inputs to what the graph declares."""
    from tdeploy.artifact.folder import open_artifact
    from tdeploy.deploy.evaluate.validate import validate
    from tdeploy.export.onnx_export import ExportOptions, export

    export("vit-ti16", tmp_path / "a", options=ExportOptions(precision="fp16", io_dtype="fp16"), **VIT)
    report = validate(open_artifact(tmp_path / "a"), backends=["ort"], sizes=[(32, 32)])
    assert report.passed, report.summary()
