"""Window attention export: one tdeploy::WindowAttention node + model-local function (ORT runs it),
the inlined --no-plugins form, the PTX entry of the TensorRT AOT kernel, and the TensorRT plugin."""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess

import numpy as np
import onnx
import onnx.inliner
import onnxruntime as ort
import pytest
import torch

import tdeploy.plugins
from tdeploy.plugins.onnx_functions import finalize_plugin_nodes
from tdeploy.plugins.window_attention import window_attention, window_attention_reference
from tests.plugins.devices import ort_run

HAS_TRITON = importlib.util.find_spec("triton") is not None


class _Block(torch.nn.Module):
    """qkv Linear -> window attention -> proj, like a Swin block's attention."""

    def __init__(self, with_mask: bool, dim=32, heads=2, n=16, n_win=4):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.register_buffer("bias", torch.randn(heads, n, n))
        mask = torch.where(torch.rand(n_win, n, n) > 0.3, 0.0, -100.0) if with_mask else None
        self.register_buffer("mask", mask)

    def forward(self, x):  # (B*nW, N, C)
        return self.proj(window_attention(self.qkv(x), self.bias, self.mask, num_heads=self.heads))


def _export(model, x):
    program = torch.onnx.export(
        model,
        (x,),
        dynamo=True,
        opset_version=18,
        dynamic_shapes={"x": {0: torch.export.Dim("windows")}},
        custom_translation_table=tdeploy.plugins.custom_translation_table(),
        verbose=False,
    )
    return finalize_plugin_nodes(program.model_proto)


# fp32: ORT vs PyTorch (reference backend) differ by float rounding only; measured max 1.5e-7 (|out| < 1.2).
ATOL_FP32 = 8e-7


def _ort(model_proto, x):
    session = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


@pytest.fixture(scope="module", params=[True, False], ids=["mask", "nomask"])
def exported(request):
    torch.manual_seed(0)
    model = _Block(request.param).eval()
    return model, _export(model, torch.randn(8, 16, 32))


def test_one_plugin_node_with_attributes(exported):
    _, proto = exported
    nodes = [n for n in proto.graph.node if n.domain == "tdeploy"]
    assert [n.op_type for n in nodes] == ["WindowAttention"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs["num_heads"] == 2 and isinstance(attrs["num_heads"], int)
    assert attrs["scale"] == pytest.approx(16**-0.5)
    assert attrs["plugin_namespace"] == b"tdeploy" and attrs["plugin_version"] == b"1"
    assert len(nodes[0].input) == 3  # qkv, bias, mask (or the (1, 1, 1) no-mask sentinel)
    assert {(o.domain, o.version) for o in proto.opset_import} >= {("", 18), ("tdeploy", 1)}


def test_local_function_and_checker(exported):
    _, proto = exported
    functions = [(f.domain, f.name) for f in proto.functions]
    assert functions == [("tdeploy", "WindowAttention")]
    body_domains = {n.domain for n in proto.functions[0].node}
    assert body_domains == {""}  # standard ops only
    onnx.checker.check_model(proto, full_check=True)


def test_ort_runs_file_as_is_at_another_batch(exported):
    model, proto = exported
    x = torch.randn(12, 16, 32)  # exported with 8 windows
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(_ort(proto, x), expected, rtol=0, atol=ATOL_FP32)


def test_inlined_no_plugins_model(exported):
    model, proto = exported
    plain = onnx.inliner.inline_local_functions(proto)
    assert not plain.functions
    assert {n.domain for n in plain.graph.node} <= {"", "ai.onnx"}
    onnx.checker.check_model(plain, full_check=True)
    x = torch.randn(4, 16, 32)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(_ort(plain, x), expected, rtol=0, atol=ATOL_FP32)


def test_finalize_is_idempotent_and_stamps_missing_attributes(exported):
    _, proto = exported
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    node = next(n for n in copy.graph.node if n.domain == "tdeploy")
    keep = [a for a in node.attribute if not a.name.startswith("plugin_")]
    del node.attribute[:]
    node.attribute.extend(keep)
    finalize_plugin_nodes(copy)
    finalize_plugin_nodes(copy)
    assert len(copy.functions) == 1
    assert {a.name for a in node.attribute} >= {"plugin_namespace", "plugin_version"}


# The function at the configurations models use, each exported once and run by ORT at a window count
# other than the export one, as exported and inlined (--no-plugins), against the PyTorch reference.
FUNCTION_CONFIGS = [
    # name, dim, heads, N, nW (None: no mask, the (1, 1, 1) sentinel), export windows, run windows
    ("swin_t_N49_h3", 96, 3, 49, 4, 8, 12),
    ("swinir_N64_h6_d30", 180, 6, 64, 4, 4, 16),
    ("swin_b_384_N144_h4", 128, 4, 144, 2, 4, 6),
    ("N144_nomask", 128, 4, 144, None, 4, 3),  # 3 windows: any count once there is no mask
    ("N49_nomask_h3", 96, 3, 49, None, 8, 5),
    ("N256_h2_d64", 128, 2, 256, 1, 2, 3),
    ("N1_h2", 32, 2, 1, 3, 6, 9),  # single-token windows
]


@pytest.mark.parametrize("name, dim, heads, n, n_win, export_windows, run_windows", FUNCTION_CONFIGS,
                         ids=[c[0] for c in FUNCTION_CONFIGS])
def test_function_matches_pytorch_at_model_configs(name, dim, heads, n, n_win, export_windows, run_windows):
    torch.manual_seed(0)
    model = _Block(n_win is not None, dim=dim, heads=heads, n=n, n_win=n_win or 1).eval()
    proto = _export(model, torch.randn(export_windows, n, dim))
    node = next(node for node in proto.graph.node if node.domain == "tdeploy")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["num_heads"] == heads and attrs["scale"] == pytest.approx((dim // heads) ** -0.5)
    shapes = {i.name: tuple(i.dims) for i in proto.graph.initializer}
    assert [shapes.get(i) for i in node.input[1:]] == [(heads, n, n), (n_win, n, n) if n_win else (1, 1, 1)]
    x = torch.randn(run_windows, n, dim)  # (B*nW, N, C)
    with torch.no_grad():
        expected = model(x).numpy()
    for form in (proto, onnx.inliner.inline_local_functions(proto)):
        np.testing.assert_allclose(_ort(form, x), expected, rtol=0, atol=ATOL_FP32)


def test_fp16_function_matches_reference():
    """The function body accumulates in fp32 and returns qkv's dtype (fp16 model)."""
    torch.manual_seed(0)
    model = _Block(True).eval().half()
    x = torch.randn(8, 16, 32).half()
    proto = _export(model, x)
    got = _ort(proto, x)
    assert got.dtype == np.float16
    with torch.no_grad():
        expected = model(x).float().numpy()
    # fp16 Linears on both sides, then fp16 outputs: measured 4.9e-4 (one fp16 ulp at |out| ~ 0.64)
    np.testing.assert_allclose(got.astype(np.float32), expected, rtol=0, atol=2e-3)


class _Attention(torch.nn.Module):
    """window_attention alone, no Linears (ONNX Runtime's CPU MatMul has no bfloat16 kernel)."""

    def __init__(self, heads=3, n=49, n_win=4):
        super().__init__()
        self.heads = heads
        self.register_buffer("bias", torch.randn(heads, n, n))
        self.register_buffer("mask", torch.where(torch.rand(n_win, n, n) > 0.3, 0.0, -100.0))

    def forward(self, x):  # qkv (B*nW, N, 3*C)
        return window_attention(x, self.bias, self.mask, num_heads=self.heads)


def test_bf16_function_matches_reference():
    """bfloat16 in, bfloat16 out (the function computes in fp32), at a window count other than the export's."""
    torch.manual_seed(0)
    model = _Attention().eval().to(torch.bfloat16)
    proto = _export(model, torch.randn(8, 49, 3 * 96).to(torch.bfloat16))
    qkv = torch.randn(12, 49, 3 * 96).to(torch.bfloat16)  # 3 images of nW = 4 windows, 3 heads of 32
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = ort_run(session, {session.get_inputs()[0].name: qkv})
    expected = window_attention_reference(qkv.double(), model.bias.double(), model.mask.double(), 3, 32**-0.5)
    assert got.dtype == torch.bfloat16 and got.shape == (12, 49, 96)
    # relative to max |out|: measured 1.7e-3 (the output's rounding to bf16, half an ulp)
    err = ((got.double() - expected).abs().max() / expected.abs().max()).item()
    assert err < 7e-3, err


# ---- TensorRT AOT kernel: PTX entry for each target --------------------------------------------

TARGETS = (80, 86, 87, 89, 90)


CONFIGS = [("fp16", True, 49, 3, 32), ("fp32", False, 64, 6, 30)]


@pytest.fixture(scope="module")
def ptx_kernels():
    """All targets x configs, compiled in one Triton process (under TRITON_INTERPRET=1, a subprocess)."""
    if not HAS_TRITON:
        pytest.skip("triton is not installed: cannot compile the plugin kernel to PTX")
    from tdeploy.plugins.window_attention.trt import compile_kernels, kernel_config

    keys = [(cc, cfg) for cc in TARGETS for cfg in CONFIGS]
    configs = [kernel_config(dtype, n, heads, d, d**-0.5, has_mask, cc) for cc, (dtype, has_mask, n, heads, d) in keys]
    return dict(zip(keys, compile_kernels(configs)))


@pytest.mark.parametrize("cc", TARGETS)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c[0]}-mask{int(c[1])}-N{c[2]}-h{c[3]}-d{c[4]}")
def test_ptx_entry_matches_tensorrt_launch(ptx_kernels, cc, config, tmp_path):
    from tdeploy.plugins.triton_aot import entry_params

    kernel = ptx_kernels[(cc, config)]
    dtype = config[0]
    name, params = entry_params(kernel.ptx)
    # TensorRT passes: qkv, bias, mask pointers; n_win (int32 extra); out pointer. Nothing else.
    assert name == kernel.name == "window_attention_kernel"
    assert [t for _, t in params] == ["ptr", "ptr", "ptr", "u32", "ptr"]
    assert f".target sm_{cc}" in kernel.ptx
    assert kernel.num_warps in (4, 8) and kernel.shared >= 0
    ptxas = pathlib.Path(importlib.util.find_spec("triton").origin).parent / "backends/nvidia/bin/ptxas"
    if ptxas.exists():  # the rewritten entry must still assemble
        ptx_file = tmp_path / f"window_attention_sm{cc}_{dtype}.ptx"
        ptx_file.write_text(kernel.ptx)
        arch = f"sm_{cc}a" if cc == 90 else f"sm_{cc}"
        result = subprocess.run([str(ptxas), f"-arch={arch}", str(ptx_file), "-o", "/dev/null"],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_entry_parser_and_hidden_param_refusal():
    from tdeploy.errors import TdeployError
    from tdeploy.plugins.triton_aot import _strip_hidden, entry_params, expected_params

    ptx = (".visible .entry k(\n\t.param .u64 .ptr .global .align 1 k_param_0,\n\t.param .u32 k_param_1,\n"
           "\t.param .u64 .ptr .global .align 1 k_param_2\n)\n{\n\tld.param.b64 %rd1, [k_param_0];\n"
           "\tld.param.b64 %rd2, [k_param_2];\n}\n")
    assert entry_params(ptx) == ("k", [("k_param_0", "ptr"), ("k_param_1", "u32"), ("k_param_2", "ptr")])
    assert expected_params({"X": "*fp16", "n": "i32", "B": "constexpr"}) == ("ptr", "u32")
    assert entry_params(_strip_hidden(ptx.replace("[k_param_2]", "[k_param_0]"), "k", entry_params(ptx)[1], 2))[1] \
        == [("k_param_0", "ptr"), ("k_param_1", "u32")]
    with pytest.raises(TdeployError, match="used by the kernel body"):
        _strip_hidden(ptx, "k", entry_params(ptx)[1], 2)


# ---- TensorRT -----------------------------------------------------------------------------------


@pytest.mark.trt
@pytest.mark.parametrize("with_mask", [True, False], ids=["mask", "no-mask sentinel"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_with_plugin_matches_the_reference(with_mask, precision):
    """The exported block through TensorRT with the QDP plugin (every node a plugin layer), at several
    window counts, against the PyTorch *reference* backend on CPU (not the Triton kernel it embeds)."""
    from tdeploy.export.precision.fp16 import convert_to_fp16
    from tests.tensorrt.engine_check import build_qdp_engine, run_engine

    torch.manual_seed(0)
    model = _Block(with_mask).eval()
    proto = _export(model, torch.randn(8, 16, 32))
    if precision == "fp16":
        proto, _ = convert_to_fp16(proto)
    name = proto.graph.input[0].name
    data, layers = build_qdp_engine(proto, {name: ((4, 16, 32), (8, 16, 32), (16, 16, 32))})
    assert layers["plugins"] == {"WindowAttention": 1}
    tol = 1e-3 if precision == "fp32" else 2e-2
    for windows in (4, 12, 16):
        x = torch.randn(windows, 16, 32)
        (out,) = run_engine(data, {name: x})
        with torch.no_grad():
            want = model(x)  # CPU tensors: the reference backend
        torch.testing.assert_close(out.float().cpu(), want, rtol=tol, atol=tol)
