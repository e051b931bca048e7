"""Window attention: Triton (interpreted on CPU) vs reference, reference vs an independent form,
shape errors, backend choice, ONNX export (node + local function + inlined) and the PTX entry."""

from __future__ import annotations

import importlib.util
import random

import pytest
import torch

from tdeploy.errors import BackendUnavailable, TdeployError
from tdeploy.plugins.window_attention import PLUGIN_OP, window_attention, window_attention_reference

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install 'tdeploy[triton]')")

HEAD_DIMS = (16, 24, 30, 32, 48, 64, 96, 128)
# Max abs error vs the fp32 reference, relative to max |out| (outputs are averages of v: O(1)).
TOL = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def _inputs(windows, n, heads, head_dim, n_win, dtype, with_mask, seed=0):
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
    return ((got.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1)).item()


def _check_case(windows, n, heads, head_dim, n_win, dtype, with_mask, seed):
    qkv, bias, mask = _inputs(windows, n, heads, head_dim, n_win, dtype, with_mask, seed)
    out = window_attention(qkv, bias, mask, num_heads=heads, backend="triton")
    assert out.dtype == dtype and out.shape == (windows, n, heads * head_dim)
    # The reference computed in fp32 from the same (rounded) inputs.
    ref = window_attention_reference(qkv.float(), bias.float(), None if mask is None else mask.float(), heads,
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
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_reference_vs_timm_math():
    """timm's WindowAttention.forward math, written out (scale on q, bias, mask view per image)."""
    windows, n, heads, d, n_win = 4, 16, 2, 8, 2
    qkv, bias, mask = _inputs(windows, n, heads, d, n_win, torch.float64, True)
    q, k, v = qkv.reshape(windows, n, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0)
    attn = (q * d**-0.5) @ k.transpose(-2, -1) + bias.unsqueeze(0)
    attn = attn.view(-1, n_win, heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
    attn = attn.view(-1, heads, n, n).softmax(-1)
    expected = (attn @ v).transpose(1, 2).reshape(windows, n, -1)
    torch.testing.assert_close(window_attention(qkv, bias, mask, num_heads=heads), expected)


def test_custom_scale_and_dtype():
    qkv, bias, mask = _inputs(2, 9, 1, 16, 1, torch.float16, True)
    out = window_attention(qkv, bias, mask, num_heads=1, scale=0.3)
    ref = window_attention_reference(qkv.float(), bias.float(), mask.float(), 1, 0.3)
    assert out.dtype == torch.float16
    assert _err(out, ref) < 4e-3


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
