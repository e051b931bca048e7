"""Window attention: Triton vs reference (compiled on a GPU when there is one, else interpreted on CPU),
the reference vs SDPA and vs timm's own WindowAttention, shape errors, backend choice, torch.export."""

from __future__ import annotations

import importlib.util
import random
import textwrap

import pytest
import torch

from tdeploy.errors import BackendUnavailable, TdeployError
from tdeploy.plugins.window_attention import PLUGIN_OP, window_attention, window_attention_reference
from tests.plugins.devices import DEVICE, run_interpreted

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install 'tdeploy[triton]')")

HEAD_DIMS = (16, 24, 30, 32, 48, 64, 96, 128)
# Max abs error vs the fp64 reference, relative to max(max |out|, 1) (outputs are averages of v: O(1)).
# Measured in the interpreter over the sweep, named and wide cases: fp32 6.3e-7, fp16 4.5e-4, bf16 6.6e-3
# (bf16: Triton 3.5.1's interpreter truncates fp32 -> bf16, one ulp; compiled kernels round to nearest).
TOL = {torch.float32: 3e-6, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def _inputs(windows, n, heads, head_dim, n_win, dtype, with_mask, seed=0):
    """qkv (windows, N, 3*heads*head_dim), bias (heads, N, N), mask (n_win, N, N) or None; on CPU."""
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(windows, n, 3 * heads * head_dim, generator=g).to(dtype)
    bias = (torch.randn(heads, n, n, generator=g) * 2).to(dtype)
    mask = None
    if with_mask:
        # Swin's shifted-window mask: 0 inside a region, -100 across regions.
        region = torch.randint(0, 3, (n_win, n), generator=g)
        mask = torch.where(region[:, :, None] == region[:, None, :], 0.0, -100.0).to(dtype)
    return qkv, bias, mask


def _err(got, ref):
    return ((got.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1)).item()


def _check_case(windows, n, heads, head_dim, n_win, dtype, with_mask, seed):
    """The Triton kernel on DEVICE vs the reference in fp64 on the same (rounded) inputs: the error."""
    qkv, bias, mask = (None if t is None else t.to(DEVICE)
                       for t in _inputs(windows, n, heads, head_dim, n_win, dtype, with_mask, seed))
    out = window_attention(qkv, bias, mask, num_heads=heads, backend="triton")
    assert out.dtype == dtype and out.shape == (windows, n, heads * head_dim) and out.device == qkv.device
    ref = window_attention_reference(qkv.double(), bias.double(), None if mask is None else mask.double(), heads,
                                     head_dim**-0.5)
    return _err(out, ref)


def _sweep_cases(count=220, seed=1234):
    """Seeded random cases: N in 1..256 (49, 64, 144, 256 always in), heads 1-8, every head dim."""
    rng = random.Random(seed)
    dtypes = [torch.float32, torch.float16] + ([torch.bfloat16] if HAS_TRITON else [])
    fixed_n = [1, 49, 64, 144, 256, 2, 7, 16, 17, 33, 63, 65, 100, 128, 129, 196, 255]
    cases = []
    for i in range(count):
        # Most windows in models are small (7x7, 8x8): 4 of 5 random N <= 64, the rest up to 256.
        n = fixed_n[i] if i < len(fixed_n) else rng.randint(1, 64) if i % 5 else rng.randint(65, 256)
        head_dim = HEAD_DIMS[i % len(HEAD_DIMS)]
        n_win = rng.choice([1, 2, 3])
        windows = n_win * rng.choice([1, 2])
        heads = rng.randint(1, 8)
        # The interpreter's cost ~ programs x key steps x tile = windows * heads * ceil(N/64)**2 * block**2:
        # cap it (fewer images first, then fewer heads) so that the sweep stays fast.
        block = max(16, min(64, 1 << (n - 1).bit_length()))
        unit = (-(-n // 64)) ** 2 * block * block / 4096
        if windows * heads * unit > 3:
            windows = n_win
        if windows * heads * unit > 3:
            heads = max(1, int(3 // (windows * unit)))
        dtype = dtypes[rng.randrange(len(dtypes))]
        cases.append((windows, n, heads, head_dim, n_win, dtype, i % 2 == 0, seed + i))
    return cases


@needs_triton
def test_triton_sweep_vs_reference():
    """>= 200 random cases in one test; every failure is reported, not just the first."""
    cases = _sweep_cases()
    assert len(cases) >= 200
    failures = []
    for case in cases:
        err = _check_case(*case)
        if not err <= TOL[case[5]]:
            failures.append(f"windows={case[0]} N={case[1]} heads={case[2]} d={case[3]} nW={case[4]} "
                            f"{case[5]} mask={case[6]}: err {err:.2e} > {TOL[case[5]]:.0e}")
    assert not failures, f"{len(failures)}/{len(cases)} cases fail:\n" + "\n".join(failures)


@needs_triton
@pytest.mark.parametrize(
    "name, windows, n, heads, head_dim, n_win",
    [
        ("swin_t_stage1", 4, 49, 3, 32, 2),
        ("swin_b_stage1", 2, 49, 4, 32, 2),
        ("swinir", 2, 64, 6, 30, 2),
        ("window_12x12", 2, 144, 2, 24, 2),
        ("window_16x16_d128", 1, 256, 1, 128, 1),
        ("single_token", 3, 1, 2, 48, 3),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("with_mask", [True, False], ids=["mask", "nomask"])
def test_triton_named_cases(name, windows, n, heads, head_dim, n_win, dtype, with_mask):
    assert _check_case(windows, n, heads, head_dim, n_win, dtype, with_mask, seed=7) <= TOL[dtype]


# The corners the sweep cannot afford in the interpreter (it caps heads to 1 once N > 64, and has at
# most 6 windows and nW <= 3): several heads at N > 64, every multi-block N class, more windows and
# masks, every head dim and dtype the README claims. ~0.3-1.5 s each interpreted.
WIDE_CASES = [
    # name, windows (B*nW), N, heads, head_dim, nW, dtype, mask
    ("swin_t_12_windows_nW4", 12, 49, 3, 32, 4, torch.float32, True),
    ("swin_b_384_n144_h4_fp16", 2, 144, 4, 32, 2, torch.float16, True),
    ("n100_8_windows_h2_bf16", 8, 100, 2, 48, 4, torch.bfloat16, True),
    ("n256_h2_fp32", 2, 256, 2, 64, 2, torch.float32, True),
    ("n256_h2_d128_fp16", 1, 256, 2, 128, 1, torch.float16, False),
    ("n196_h3_d96_bf16", 1, 196, 3, 96, 1, torch.bfloat16, True),
    ("n129_h2_d30_fp16", 4, 129, 2, 30, 2, torch.float16, True),  # one key row past the 2nd block
    ("n65_h4_d24_bf16", 2, 65, 4, 24, 1, torch.bfloat16, False),
    ("n64_h6_d30_16_windows_nW8_fp16", 16, 64, 6, 30, 8, torch.float16, True),  # SwinIR, 8 masks
    ("n144_h2_d16_fp32", 3, 144, 2, 16, 3, torch.float32, False),
]


@needs_triton
@pytest.mark.parametrize("name, windows, n, heads, head_dim, n_win, dtype, with_mask", WIDE_CASES,
                         ids=[c[0] for c in WIDE_CASES])
def test_triton_wide_cases(name, windows, n, heads, head_dim, n_win, dtype, with_mask):
    assert _check_case(windows, n, heads, head_dim, n_win, dtype, with_mask, seed=11) <= TOL[dtype]


# ---- compiled kernels at real model sizes (GPU only: the interpreter cannot afford them) ----------
# stage-1 attention at batch 8: windows = 8 images * nW windows each, one (N, N) mask per window.
MODEL_CASES = [
    # name, windows (B*nW), N, heads, head_dim, nW
    ("swin_t_stage1_b8", 8 * 64, 49, 3, 32, 64),  # 224 px: 56x56 tokens, 7x7 windows
    ("swin_b_384_stage1_b8", 8 * 64, 144, 4, 32, 64),  # 384 px: 96x96 tokens, 12x12 windows
    ("swinir_b8", 8 * 64, 64, 6, 30, 64),  # 64x64 tokens, 8x8 windows, embed 180
]


@pytest.mark.gpu
@needs_triton
@pytest.mark.parametrize("name, windows, n, heads, head_dim, n_win", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("with_mask", [True, False], ids=["mask", "nomask"])
def test_compiled_kernel_at_model_sizes(name, windows, n, heads, head_dim, n_win, dtype, with_mask):
    assert DEVICE.type == "cuda"
    assert _check_case(windows, n, heads, head_dim, n_win, dtype, with_mask, seed=3) <= TOL[dtype]


# A handful of cases of each op, run where tests/conftest.py does not turn the interpreter on (a GPU
# machine), in a subprocess that hides the GPU: the interpreter path must stay right there too.
INTERPRETED_CASES = [
    # windows, N, heads, head_dim, nW, dtype, mask, seed
    (4, 49, 3, 32, 2, torch.float32, True, 1),
    (2, 64, 2, 30, 2, torch.float16, False, 2),
    (2, 100, 1, 24, 1, torch.bfloat16, True, 3),
    (3, 1, 2, 48, 3, torch.float16, True, 4),
]

_INTERPRETED_SCRIPT = textwrap.dedent("""
    import json
    import torch
    from tdeploy.plugins.backends import is_interpreted
    from tdeploy.plugins.neighborhood_attention.triton import na2d_fwd_kernel
    from tdeploy.plugins.window_attention.triton import window_attention_kernel
    from tests.plugins import test_neighborhood_attention as na, test_window_attention as wa

    assert not torch.cuda.is_available(), "CUDA_VISIBLE_DEVICES='' should hide the GPU"
    assert is_interpreted(window_attention_kernel) and is_interpreted(na2d_fwd_kernel)
    print(json.dumps({"wa": [wa._check_case(*case) for case in wa.INTERPRETED_CASES],
                      "na": [na._triton_error(case) for case in na.INTERPRETED_CASES]}))
""")


@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="without a GPU every Triton test already runs interpreted")
def test_interpreter_on_a_gpu_machine():
    from tests.plugins import test_neighborhood_attention as na

    errors = run_interpreted(_INTERPRETED_SCRIPT)
    wa_failures = [(case, err) for case, err in zip(INTERPRETED_CASES, errors["wa"]) if not err <= TOL[case[5]]]
    na_failures = [(case, err) for case, err in zip(na.INTERPRETED_CASES, errors["na"])
                   if not err <= na.TOL[case["dtype"]]]
    assert len(errors["wa"]) == len(INTERPRETED_CASES) and len(errors["na"]) == len(na.INTERPRETED_CASES)
    assert not wa_failures and not na_failures, (wa_failures, na_failures)


@pytest.mark.parametrize("with_mask", [True, False], ids=["mask", "nomask"])
def test_reference_vs_sdpa(with_mask):
    """The reference against torch SDPA fed bias + mask as attn_mask (an independent formulation)."""
    windows, n, heads, d, n_win = 6, 49, 3, 32, 3
    qkv, bias, mask = _inputs(windows, n, heads, d, n_win, torch.float64, with_mask)
    q, k, v = qkv.reshape(windows, n, 3, heads, d).permute(2, 0, 3, 1, 4)
    attn_mask = bias.unsqueeze(0).expand(windows, -1, -1, -1)
    if with_mask:
        attn_mask = attn_mask + mask.repeat(windows // n_win, 1, 1).unsqueeze(1)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    expected = expected.transpose(1, 2).reshape(windows, n, heads * d)
    got = window_attention(qkv, bias, mask, num_heads=heads, backend="reference")
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-14)  # fp64, measured 2.2e-15 (|out| <= 3.4)


@pytest.mark.parametrize("fused_attn", [False, True], ids=["timm_matmul", "timm_sdpa"])
@pytest.mark.parametrize(
    "window, resolution, shift",
    [((7, 7), (14, 14), (3, 3)), ((6, 8), (12, 16), (3, 4)), ((7, 7), (14, 14), (0, 0))],
    ids=["7x7_shifted", "6x8_shifted", "7x7_unshifted"],
)
def test_reference_vs_timm_window_attention(fused_attn, window, resolution, shift):
    """timm's own WindowAttention module (both its forward paths), with random weights and a random
    bias table, against qkv Linear -> window_attention -> proj, bias gathered with timm's index."""
    swin = pytest.importorskip("timm.models.swin_transformer")
    dim, heads = 48, 3
    block = swin.SwinTransformerBlock(dim, resolution, num_heads=heads, window_size=window, shift_size=shift)
    block = block.double().eval()
    attn = block.attn
    attn.fused_attn = fused_attn
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in (attn.qkv.weight, attn.qkv.bias, attn.proj.weight, attn.proj.bias):
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
        table = attn.relative_position_bias_table  # ((2Wh-1)*(2Ww-1), heads)
        table.copy_(torch.randn(table.shape, generator=g, dtype=table.dtype) * 2)
    n = window[0] * window[1]
    mask = block.attn_mask  # timm's shifted-window mask (nW, N, N), 0 / -100; None when unshifted
    n_win = (resolution[0] // window[0]) * (resolution[1] // window[1])
    assert (mask is None) == (shift == (0, 0)) and (mask is None or mask.shape == (n_win, n, n))
    x = torch.randn(2 * n_win, n, dim, generator=g, dtype=torch.float64)  # (B*nW, N, C), B = 2 images
    with torch.no_grad():
        expected = attn(x, mask=mask)
        # timm's _get_rel_pos_bias: table[index] -> (N, N, heads) -> (heads, N, N)
        bias = table[attn.relative_position_index.view(-1)].view(n, n, heads).permute(2, 0, 1)
        got = attn.proj(window_attention(attn.qkv(x), bias, mask, num_heads=heads, backend="reference"))
    assert mask is None or mask.min() == -100  # the mask really cuts some pairs
    # fp64: timm's matmul path equals ours bit for bit (same ops), its SDPA path is off by 4.1e-14 (|out| ~ 60)
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-13)


def test_custom_scale_and_dtype():
    qkv, bias, mask = _inputs(2, 9, 1, 16, 1, torch.float16, True)
    out = window_attention(qkv, bias, mask, num_heads=1, scale=0.3)
    ref = window_attention_reference(qkv.float(), bias.float(), mask.float(), 1, 0.3)
    assert out.dtype == torch.float16
    assert _err(out, ref) < 1e-3  # the reference backend on CPU: fp16 output rounding, measured 2.6e-4


@pytest.mark.parametrize(
    "qkv_shape, bias_shape, mask_shape, heads, match",
    [
        ((2, 4, 30), (2, 4, 4), None, 4, "not divisible by 3\\*num_heads"),
        ((2, 4, 24), (3, 4, 4), None, 2, "bias must be"),
        ((3, 4, 24), (2, 4, 4), (2, 4, 4), 2, "does not divide"),
        ((2, 4, 24), (2, 4, 4), (2, 5, 5), 2, "mask must be"),
        ((2, 24), (2, 4, 4), None, 2, "qkv must be"),
    ],
)
def test_shape_errors_are_one_line(qkv_shape, bias_shape, mask_shape, heads, match):
    mask = None if mask_shape is None else torch.zeros(mask_shape)
    with pytest.raises(TdeployError, match=match) as info:
        window_attention(torch.zeros(qkv_shape), torch.zeros(bias_shape), mask, num_heads=heads)
    assert "\n" not in str(info.value)


def test_backend_choice_and_errors(monkeypatch):
    from tdeploy.plugins.backends import choose_backend
    from tdeploy.plugins.window_attention import op

    qkv = torch.zeros(1, 4, 6)
    assert choose_backend("window_attention", None, qkv.device, lambda b: op.backend_problem(b, qkv)) == "reference"
    with pytest.raises(TdeployError, match="unknown backend"):
        window_attention(qkv, torch.zeros(1, 4, 4), num_heads=1, backend="cuda")
    monkeypatch.setattr(op, "backend_problem", lambda backend, qkv: "triton is not installed (pip ...)")
    with pytest.raises(BackendUnavailable, match="backend 'triton' cannot run: triton is not installed"):
        window_attention(torch.zeros(1, 4, 6), torch.zeros(1, 4, 4), num_heads=1, backend="triton")


@needs_triton
def test_cpu_without_interpreter_is_refused(monkeypatch):
    from tdeploy.plugins.window_attention import op
    from tdeploy.plugins.window_attention import triton as wa_triton

    class Compiled:  # what @triton.jit returns without TRITON_INTERPRET=1
        pass

    monkeypatch.setattr(wa_triton, "window_attention_kernel", Compiled())
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    reason = op.backend_problem("triton", torch.zeros(1, 4, 6))
    assert "TRITON_INTERPRET=1" in reason and "CUDA" in reason


def test_single_custom_op_under_torch_export():
    """One tdeploy.window_attention node, whatever the backend, with a symbolic B*nW."""

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = torch.nn.Linear(16, 48)
            self.register_buffer("bias", torch.randn(2, 9, 9))
            self.register_buffer("mask", torch.randn(2, 9, 9))

        def forward(self, x):
            return window_attention(self.qkv(x), self.bias, self.mask, num_heads=2)

    ep = torch.export.export(Block(), (torch.randn(4, 9, 16),), dynamic_shapes={"x": {0: torch.export.Dim("b")}})
    targets = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    assert targets.count(torch.ops.tdeploy.window_attention.default) == 1
    assert PLUGIN_OP.torch_op is torch.ops.tdeploy.window_attention.default
