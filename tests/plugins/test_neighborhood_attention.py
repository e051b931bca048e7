"""Neighborhood attention op: reference semantics, Triton (compiled on a GPU when there is one, else
interpreted on CPU), ONNX node + function in ONNX Runtime, PTX.

The reference is pinned down three ways: NATTEN 0.17's index formulas followed literally (with rpb,
borders and dilation), natten's current release (no rpb), and the other backends against it.
"""

from __future__ import annotations

import importlib.util
import random
import re

import numpy as np
import onnx
import onnx.inliner
import pytest
import torch

from tdeploy.errors import BackendUnavailable, TdeployError
from tdeploy.plugins import custom_translation_table
from tdeploy.plugins.neighborhood_attention import PLUGIN_OP, neighborhood_attention
from tdeploy.plugins.neighborhood_attention import onnx as na_onnx
from tdeploy.plugins.neighborhood_attention.reference import (
    neighbor_indices,
    neighborhood_attention_reference,
)
from tdeploy.plugins.onnx_functions import finalize_plugin_nodes
from tests.plugins.devices import DEVICE, ort_run

ort = pytest.importorskip("onnxruntime")


# ----------------------------------------------------------------------- NATTEN 0.17, followed literally
def natten017_window_start(index, length, kernel_size, neighborhood_size, dilation):
    """NATTEN 0.17 ``get_window_start`` (csrc naive kernels), non-causal."""
    dilation_idx = index % dilation
    index_pdp = index // dilation
    length_pdp = (length + dilation - 1) // dilation
    num_padded = length_pdp * dilation - length
    length_pdp -= 1 if dilation_idx >= dilation - num_padded else 0
    start_idx = max(index_pdp - neighborhood_size, 0) + (index_pdp + neighborhood_size >= length_pdp) * (
        length_pdp - index_pdp - neighborhood_size - 1
    )
    return start_idx * dilation + dilation_idx


def natten017_pb_start(index, length, kernel_size, neighborhood_size, dilation):
    """NATTEN 0.17 ``get_pb_start``: first rpb index of the window along one axis."""
    if dilation <= 1:
        return (
            neighborhood_size
            + (index < neighborhood_size) * (neighborhood_size - index)
            + (index + neighborhood_size >= length) * (length - index - 1 - neighborhood_size)
        )
    if index - neighborhood_size * dilation < 0:
        return kernel_size - 1 - (index // dilation)
    if index + neighborhood_size * dilation >= length:
        return (length - index - 1) // dilation
    return neighborhood_size


def natten017_bruteforce(qkv, rpb, num_heads, k, d, scale):
    """na2d_qk (+rpb) -> softmax -> na2d_av, one query at a time, as NATTEN 0.17's naive CPU kernels."""
    B, H, W, C3 = qkv.shape
    hd = C3 // (3 * num_heads)
    q, key, v = qkv.double().reshape(B, H, W, 3, num_heads, hd).unbind(3)
    out = torch.zeros(B, H, W, num_heads, hd, dtype=torch.float64)
    ns = k // 2
    for i in range(H):
        ni, pi = natten017_window_start(i, H, k, ns, d), natten017_pb_start(i, H, k, ns, d)
        rows = [ni + ki * d for ki in range(k)]
        for j in range(W):
            nj, pj = natten017_window_start(j, W, k, ns, d), natten017_pb_start(j, W, k, ns, d)
            cols = [nj + kj * d for kj in range(k)]
            kn = key[:, rows][:, :, cols]  # (B, k, k, heads, hd)
            vn = v[:, rows][:, :, cols]
            attn = torch.einsum("bnd,bxynd->bnxy", q[:, i, j], kn) * scale  # (B, heads, k, k)
            if rpb is not None:
                attn = attn + rpb.double()[:, pi : pi + k, pj : pj + k]
            attn = attn.reshape(B, num_heads, k * k).softmax(-1).reshape(B, num_heads, k, k)
            out[:, i, j] = torch.einsum("bnxy,bxynd->bnd", attn, vn)
    return out.reshape(B, H, W, num_heads * hd)


@pytest.mark.parametrize("kernel_size", [3, 5, 7, 13])
@pytest.mark.parametrize("dilation", [1, 2, 3, 4])
def test_indices_match_natten017(kernel_size, dilation):
    k, d = kernel_size, dilation
    for length in range(k * d, k * d + 2 * d + 3):  # natten 0.17 needs length >= k*d
        idx, bias = neighbor_indices(length, k, d)
        for i in range(length):
            start = natten017_window_start(i, length, k, k // 2, d)
            pb = natten017_pb_start(i, length, k, k // 2, d)
            assert idx[i].tolist() == [start + a * d for a in range(k)], (length, i)
            assert bias[i].tolist() == [pb + a for a in range(k)], (length, i)


@pytest.mark.parametrize(
    "H,W,k,d", [(7, 9, 3, 1), (9, 8, 5, 1), (10, 11, 3, 3), (12, 9, 3, 2), (14, 15, 7, 2), (12, 13, 3, 4)]
)
def test_reference_matches_natten017_with_rpb(H, W, k, d):
    nh, hd = 2, 8
    qkv = torch.randn(2, H, W, 3 * nh * hd)
    rpb = torch.randn(nh, 2 * k - 1, 2 * k - 1)
    scale = hd**-0.5
    want = natten017_bruteforce(qkv, rpb, nh, k, d, scale)
    got = neighborhood_attention_reference(qkv, rpb, num_heads=nh, kernel_size=k, dilation=d, scale=scale)
    torch.testing.assert_close(got.double(), want, atol=4e-6, rtol=0)  # fp32 vs fp64: measured 9.6e-7


def test_small_map_is_zero_padded():
    """H, W < k*d: same as running on the map zero-padded at the bottom/right to k*d, then cropped."""
    nh, hd, k, d = 1, 8, 5, 2
    qkv = torch.randn(1, 4, 7, 3 * nh * hd)
    rpb = torch.randn(nh, 2 * k - 1, 2 * k - 1)
    padded = torch.nn.functional.pad(qkv, (0, 0, 0, 10 - 7, 0, 10 - 4))
    want = natten017_bruteforce(padded, rpb, nh, k, d, hd**-0.5)[:, :4, :7]
    got = neighborhood_attention_reference(qkv, rpb, num_heads=nh, kernel_size=k, dilation=d)
    torch.testing.assert_close(got.double(), want, atol=8e-7, rtol=0)  # fp32 vs fp64: measured 1.6e-7


@pytest.mark.skipif(
    importlib.util.find_spec("natten") is None, reason="natten is not installed (pip install natten)"
)
@pytest.mark.parametrize("H,W,k,d", [(9, 12, 3, 1), (15, 18, 5, 3), (14, 14, 7, 2), (16, 13, 13, 1)])
def test_reference_matches_natten_current(H, W, k, d):
    """natten >= 0.20 (flex-fna backend, runs on CPU; no rpb), layout (B, H, W, heads, head_dim)."""
    import natten

    nh, hd = 2, 16
    qkv = torch.randn(1, H, W, 3 * nh * hd)
    q, key, v = (t.contiguous() for t in qkv.reshape(1, H, W, 3, nh, hd).unbind(3))
    want = natten.na2d(q, key, v, kernel_size=k, dilation=d, backend="flex-fna").reshape(1, H, W, nh * hd)
    got = neighborhood_attention(qkv, num_heads=nh, kernel_size=k, dilation=d, backend="reference")
    torch.testing.assert_close(got, want, atol=2e-6, rtol=0)  # both fp32: measured 4.8e-7


# ------------------------------------------------------------------------------------- random sweep
SWEEP_DTYPES = (torch.float32, torch.float16, torch.float32, torch.bfloat16)  # case c gets [c % 4]


def _random_cases(n: int, seed: int = 1234):
    """Tiny shapes (the interpreter is slow) covering borders, dilation, small maps, k 3..13, dtypes."""
    rng = random.Random(seed)
    cases = []
    for c in range(n):
        # big dilations multiply the interpreter's programs (d*d groups): kept to small kernels
        k = rng.choice([3, 3, 3, 5, 5, 7, 9, 11, 13])
        d = rng.choice({3: [1, 1, 2, 3, 4], 5: [1, 1, 2], 7: [1, 1, 1, 2]}.get(k, [1]))
        kd = k * d
        # sizes around k*d: borders on both sides, and maps smaller than the window (padded)
        H = rng.randint(max(1, kd - 3), kd + 3)
        W = rng.randint(max(1, kd - 3), kd + 3)
        cases.append(
            dict(
                B=2 if c % 20 == 3 else 1,
                H=H,
                W=W,
                nh=2 if c % 10 == 2 else 1,
                hd=rng.choice([16, 24, 32]),
                k=k,
                d=d,
                dtype=SWEEP_DTYPES[c % 4],
                rpb=rng.random() < 0.8,
                seed=c,
            )
        )
    return cases


def _inputs(case):
    """qkv (B, H, W, 3*nh*hd) and rpb (nh, 2k-1, 2k-1) or None, in the case's dtype, on CPU."""
    g = torch.Generator().manual_seed(case["seed"])
    nh, hd, k = case["nh"], case["hd"], case["k"]
    qkv = torch.randn(case["B"], case["H"], case["W"], 3 * nh * hd, generator=g).to(case["dtype"])
    rpb = torch.randn(nh, 2 * k - 1, 2 * k - 1, generator=g).to(case["dtype"]) if case["rpb"] else None
    return qkv, rpb


def _reference64(qkv, rpb, **kw):
    """The reference in fp64 on the same (rounded) inputs, on their device."""
    return neighborhood_attention_reference(qkv.double(), None if rpb is None else rpb.double(), **kw)


def _err(got, want) -> float:
    """Max abs error relative to max(max |want|, 1): fp16/bf16 outputs round by half an ulp of |out|,
    and |out| (an average of v ~ N(0, 1)) reaches 4-5 with a sharp softmax."""
    return ((got.double() - want.double()).abs().max() / want.double().abs().max().clamp_min(1)).item()


# _err vs the fp64 reference. Measured in the interpreter over the sweep, named and wide cases: fp32
# 3.9e-7, fp16 4.7e-4, bf16 7.4e-3 (fp16: the output's rounding, half an ulp; bf16: the interpreter
# truncates fp32 -> bf16, one ulp). Compiled fp16/bf16 also round p before the p @ v dot.
TOL = {torch.float32: 2e-6, torch.float16: 2.5e-3, torch.bfloat16: 3e-2}


def _triton_error(case) -> float:
    """The Triton kernel on DEVICE vs the fp64 reference: _err (inf on a wrong dtype, shape or device)."""
    qkv, rpb = (None if t is None else t.to(DEVICE) for t in _inputs(case))
    kw = dict(num_heads=case["nh"], kernel_size=case["k"], dilation=case["d"])
    want = _reference64(qkv, rpb, **kw)
    got = neighborhood_attention(qkv, rpb, backend="triton", **kw)
    if got.dtype != qkv.dtype or got.shape != want.shape or got.device != qkv.device:
        return float("inf")
    return _err(got, want)


def test_triton_random_sweep():
    cases = _random_cases(200)
    assert {c["dtype"] for c in cases} == set(TOL)
    failures = []
    for case in cases:
        err = _triton_error(case)
        if not err <= TOL[case["dtype"]]:
            failures.append(f"{case}: err {err:.2e}")
    assert not failures, f"{len(failures)} of 200 cases failed:\n" + "\n".join(failures)


@pytest.mark.parametrize(
    "B,H,W,nh,hd,k,d,dtype",
    [
        (1, 7, 7, 2, 16, 7, 1, torch.float32),  # map == window: every query sees the whole map
        (2, 9, 17, 1, 20, 3, 1, torch.float16),  # non power-of-two head_dim
        (1, 16, 13, 2, 32, 3, 4, torch.float32),  # dilation with uneven groups
        (1, 3, 5, 1, 16, 5, 2, torch.float16),  # small map, padded to 10x10
        (1, 14, 14, 1, 16, 13, 1, torch.bfloat16),  # largest kernel, bf16
        (1, 3, 5, 1, 16, 3, 16, torch.float32),  # largest dilation, map smaller than a group
    ],
)
def test_triton_named_cases(B, H, W, nh, hd, k, d, dtype):
    qkv = torch.randn(B, H, W, 3 * nh * hd).to(dtype).to(DEVICE)
    rpb = torch.randn(nh, 2 * k - 1, 2 * k - 1).to(DEVICE)  # fp32 rpb with any qkv dtype
    kw = dict(num_heads=nh, kernel_size=k, dilation=d)
    want = _reference64(qkv, rpb, **kw)
    got = neighborhood_attention(qkv, rpb, backend="triton", **kw)
    assert got.dtype == dtype and got.device == qkv.device
    assert _err(got, want) <= TOL[dtype]


def _case(B, H, W, nh, hd, k, d, dtype, rpb=True, seed=0):
    return dict(B=B, H=H, W=W, nh=nh, hd=hd, k=k, d=d, dtype=dtype, rpb=rpb, seed=seed)


# The README's corners that the sweep (maps <= 16x17, head_dim <= 32, dilation > 1 only for k <= 7)
# does not reach: head_dim 16..128 incl. non powers of two, k up to 13 with dilation, dilation up to 16
# on a map larger than k*d, several column blocks, and k up to the Triton limit 31. 1-4 s each interpreted.
WIDE_CASES = [
    _case(1, 32, 33, 1, 64, 7, 1, torch.float32),  # 3 column blocks, hd 64
    _case(1, 24, 24, 2, 128, 5, 2, torch.float16),  # hd 128 (BLOCK_R = 2), 2 heads
    _case(2, 14, 15, 2, 96, 7, 1, torch.bfloat16, rpb=False),  # hd 96 bf16, B = 2
    _case(1, 28, 29, 1, 40, 9, 3, torch.float16),  # k 9 d 3, hd 40
    _case(1, 20, 21, 1, 32, 11, 2, torch.bfloat16),  # k 11 d 2
    _case(1, 27, 28, 1, 16, 13, 2, torch.float32, rpb=False),  # k 13 d 2
    _case(1, 30, 31, 1, 24, 7, 4, torch.bfloat16),  # k 7 d 4
    _case(1, 11, 31, 1, 48, 5, 6, torch.float16),  # k 5 d 6: rows padded, columns not
    _case(1, 3, 50, 1, 16, 3, 16, torch.float32),  # d 16 along a 50-wide axis (> k*d = 48)
    _case(1, 3, 40, 1, 32, 13, 3, torch.bfloat16),  # k 13 d 3 along a 40-wide axis (> k*d = 39)
    _case(1, 9, 20, 1, 128, 3, 1, torch.float32),  # hd 128 fp32
    _case(1, 10, 12, 2, 80, 5, 1, torch.float16),  # hd 80: padded to 128 and masked
    # k > 17 needs the 64-column key tile; only maps wider than ~k + 16 make a block's windows span
    # more than 32 columns (rows: padded to k, cheap)
    _case(1, 3, 41, 1, 16, 19, 1, torch.float32),
    _case(1, 4, 63, 1, 16, 31, 1, torch.float16),  # k 31: the Triton limit
]


@pytest.mark.parametrize("case", WIDE_CASES, ids=lambda c: "{B}x{H}x{W}-h{nh}-d{hd}-k{k}-dil{d}-{dtype}".format(**c))
def test_triton_wide_cases(case):
    assert _triton_error(case) <= TOL[case["dtype"]]


# Cases run in the interpreter on a GPU machine (test_window_attention.py::test_interpreter_on_a_gpu_machine).
INTERPRETED_CASES = [
    _case(1, 9, 11, 2, 16, 3, 1, torch.float32),
    _case(1, 12, 13, 1, 24, 5, 2, torch.float16),
    _case(1, 4, 6, 1, 32, 3, 3, torch.bfloat16),  # small map: padded to 9x9
    _case(2, 7, 8, 1, 16, 7, 1, torch.float16, rpb=False),
]


# ---- compiled kernel at model sizes (GPU only) -----------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("dilation", range(1, 9))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_compiled_kernel_on_56x56_maps(dilation, dtype):
    """NAT/DiNAT stage-1 sizes: 56x56 maps, k 7, dilation 1..8 (d 8: k*d = 56, one window per group)."""
    assert DEVICE.type == "cuda"
    case = _case(2, 56, 56, 2, 32, 7, dilation, dtype, seed=dilation)
    assert _triton_error(case) <= TOL[dtype]


@pytest.mark.gpu
def test_compiled_kernel_batch_times_heads_past_65535():
    """B * heads = 2048 * 32 = 65536 programs on one grid axis: only grid x may pass 65535."""
    from tdeploy.plugins.neighborhood_attention import triton as na_triton

    B, nh, hd, k = 2048, 32, 8, 7
    launch = na_triton.grid(B, 7, 7, nh, 1, na_triton.kernel_config(k, 1, hd))
    assert launch[0] == B * nh == 65536 and max(launch[1:]) <= 65535
    qkv, rpb = (t.to(DEVICE) for t in _inputs(_case(B, 7, 7, nh, hd, k, 1, torch.float16)))  # (2048, 7, 7, 768)
    got = neighborhood_attention(qkv, rpb, num_heads=nh, kernel_size=k, backend="triton")
    # the fp64 reference in chunks of 256 images: its (B, heads, H, W, k*k, hd) gathers are 10 GB at once
    err = max(_err(got[i : i + 256], _reference64(qkv[i : i + 256], rpb, num_heads=nh, kernel_size=k))
              for i in range(0, B, 256))
    assert err <= TOL[torch.float16]


# ------------------------------------------------------------------------- ONNX function in ORT
def _node_model(nh: int, k: int, d: int, scale: float, elem_type: int) -> onnx.ModelProto:
    """One tdeploy node with symbolic B, H, W, plus the model-local function (what export produces)."""
    node = onnx.helper.make_node(
        na_onnx.OP_TYPE,
        ["qkv", "rpb"],
        ["out"],
        domain="tdeploy",
        num_heads=nh,
        kernel_size=k,
        dilation=d,
        scale=scale,
        plugin_namespace="tdeploy",
        plugin_version="1",
    )
    graph = onnx.helper.make_graph(
        [node],
        "na",
        [
            onnx.helper.make_tensor_value_info("qkv", elem_type, ["B", "H", "W", None]),
            onnx.helper.make_tensor_value_info("rpb", elem_type, [nh, 2 * k - 1, 2 * k - 1]),
        ],
        [onnx.helper.make_tensor_value_info("out", elem_type, ["B", "H", "W", None])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)], ir_version=10)
    return finalize_plugin_nodes(model)


def _session(model: onnx.ModelProto):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


ONNX_ELEM = {torch.float32: onnx.TensorProto.FLOAT, torch.float16: onnx.TensorProto.FLOAT16,
             torch.bfloat16: onnx.TensorProto.BFLOAT16}
ONNX_HEAD_DIMS = (16, 20, 24, 32, 40, 48, 64, 96, 128)


def _onnx_cases(n: int, seed: int = 99):
    """ORT runs the function fast, so this sweep takes the README's whole range: k 3..13 with dilation
    1..4 for every k (8 and 16 for k <= 5), head_dim 16..128, 1..4 heads, odd maps from smaller than
    k*d (padded) to k*d + 9, fp32/fp16/bf16, scale 1 or head_dim^-0.5."""
    rng = random.Random(seed)
    cases = []
    for c in range(n):
        k = rng.choice([3, 5, 7, 9, 11, 13])
        d = rng.choice([1, 1, 2, 3, 4] + ([8, 16] if k <= 5 else []))
        kd = k * d
        # one map in 5 smaller than the window on both axes (padded), the rest around and past k*d
        H, W = (rng.randint(1, kd) if c % 5 == 0 else rng.randint(max(1, kd - 2), kd + 7) for _ in "HW")
        B, nh = (2 if c % 7 == 0 else 1), rng.choice([1, 1, 2, 3, 4])
        # The fp64 reference's gathered (B, heads, H, W, k*k, head_dim) tensors (the sweep's cost) are
        # kept to 1M elements: for the largest k*d fewer heads, then one image, then a narrower map.
        while B * nh * H * W * k * k * 16 > 1e6 and B * nh > 1:
            nh, B = (nh - 1, B) if nh > 1 else (nh, 1)
        W = min(W, max(1, int(1e6 // (H * k * k * 16))))
        hd = rng.choice([hd for hd in ONNX_HEAD_DIMS if B * nh * H * W * k * k * hd <= 1e6] or [16])
        dtype = (torch.float32, torch.float16, torch.bfloat16)[c % 3]
        case = dict(B=B, H=H, W=W, nh=nh, hd=hd, k=k, d=d, dtype=dtype, rpb=rng.random() < 0.8, seed=c)
        cases.append(dict(case, scale=rng.choice([1.0, hd**-0.5])))
    return cases


# _err of the function in ORT (fp32 inside) vs the fp64 reference, measured over _onnx_cases(200):
# fp32 1.0e-6, fp16 4.4e-4, bf16 3.6e-3 (fp16/bf16: the output's own rounding, <= half an ulp).
ONNX_TOL = {torch.float32: 5e-6, torch.float16: 2e-3, torch.bfloat16: 1.5e-2}


def test_onnx_function_random_sweep():
    cases = _onnx_cases(200)
    failures, sessions = [], {}
    for case in cases:
        qkv, rpb = _inputs(case)
        nh, k, d, scale = case["nh"], case["k"], case["d"], case["scale"]
        if rpb is None:  # the exported node always has an rpb input: zeros when the model has none
            rpb = torch.zeros(nh, 2 * k - 1, 2 * k - 1, dtype=qkv.dtype)
        key = (nh, k, d, scale, qkv.dtype)
        if key not in sessions:  # scale is an attribute: one session per attribute set
            sessions[key] = _session(_node_model(nh, k, d, scale, ONNX_ELEM[qkv.dtype]))
        want = _reference64(qkv, rpb, num_heads=nh, kernel_size=k, dilation=d, scale=scale)
        got = ort_run(sessions[key], {"qkv": qkv, "rpb": rpb})
        err = _err(got, want)
        if got.dtype != qkv.dtype or got.shape != want.shape or not err <= ONNX_TOL[case["dtype"]]:
            failures.append(f"{case}: err {err:.2e}")
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures)


def test_function_is_valid_onnx():
    model = _node_model(2, 7, 2, 0.25, onnx.TensorProto.FLOAT)
    onnx.checker.check_model(model, full_check=True)
    inlined = onnx.inliner.inline_local_functions(model)
    assert not inlined.functions and all(n.domain == "" for n in inlined.graph.node)
    spatial = {"14", "16", "56"}  # no spatial constant may be baked in
    for n in na_onnx.NeighborhoodAttention2D.to_function_proto().node:
        for a in n.attribute:
            if a.name in ("value_ints",):
                assert not spatial & {str(v) for v in a.ints}, n


# ------------------------------------------------------------------------- torch.export / ONNX export
class _Block(torch.nn.Module):
    """qkv Linear -> neighborhood attention -> proj, as in NAT."""

    def __init__(self, dim=32, heads=2, k=7, d=1, rpb=True):
        super().__init__()
        self.qkv, self.proj = torch.nn.Linear(dim, 3 * dim), torch.nn.Linear(dim, dim)
        self.rpb = torch.nn.Parameter(torch.randn(heads, 2 * k - 1, 2 * k - 1)) if rpb else None
        self.heads, self.k, self.d = heads, k, d

    def forward(self, x):  # (B, H, W, dim)
        y = neighborhood_attention(
            self.qkv(x), self.rpb, num_heads=self.heads, kernel_size=self.k, dilation=self.d
        )
        return self.proj(y)


def _export(model, x):
    dims = {
        0: torch.export.Dim("B", max=64),
        1: torch.export.Dim("H", max=512),
        2: torch.export.Dim("W", max=512),
    }
    prog = torch.onnx.export(
        model.eval(),
        (x,),
        dynamo=True,
        opset_version=18,
        dynamic_shapes=(dims,),
        custom_translation_table=custom_translation_table(),
        verbose=False,
    )
    return finalize_plugin_nodes(prog.model_proto)


@pytest.mark.parametrize(
    "k,d,rpb,dim,heads,sizes",
    [
        (7, 1, True, 32, 2, [(16, 16), (7, 9), (5, 6), (21, 14)]),  # 5x6: smaller than the window, padded
        (3, 2, True, 32, 2, [(11, 13), (4, 5), (20, 9)]),
        (5, 3, False, 32, 2, [(17, 15), (8, 30)]),
        (9, 4, True, 120, 3, [(37, 41), (12, 50)]),  # head_dim 40, k*d = 36: maps past it and one padded
    ],
)
def test_export_one_node_dynamic_hw(k, d, rpb, dim, heads, sizes):
    torch.manual_seed(0)
    model = _Block(dim=dim, heads=heads, k=k, d=d, rpb=rpb)
    model_proto = _export(model, torch.randn(1, 14, 14, dim))
    onnx.checker.check_model(model_proto)

    nodes = [n for n in model_proto.graph.node if n.domain == "tdeploy"]
    assert len(nodes) == 1 and nodes[0].op_type == "NeighborhoodAttention2D"
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs["num_heads"] == heads and attrs["kernel_size"] == k and attrs["dilation"] == d
    assert attrs["scale"] == pytest.approx((dim // heads) ** -0.5)
    assert attrs["plugin_namespace"] == b"tdeploy" and attrs["plugin_version"] == b"1"
    assert [(f.domain, f.name) for f in model_proto.functions] == [("tdeploy", "NeighborhoodAttention2D")]

    plugin_free = onnx.inliner.inline_local_functions(model_proto)
    assert not any(n.domain == "tdeploy" for n in plugin_free.graph.node)
    sessions = [_session(model_proto), _session(plugin_free)]
    for B, (H, W) in zip([2, 1, 1, 1], sizes):
        x = torch.randn(B, H, W, dim)
        with torch.no_grad():
            want = model(x).numpy()
        for sess in sessions:
            (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
            # fp32 ORT vs PyTorch: measured 1.5e-7 (|out| < 1.1)
            np.testing.assert_allclose(got, want, atol=8e-7, rtol=0, err_msg=f"{H}x{W}")


def test_torch_export_keeps_one_custom_op_with_dynamic_hw():
    model = _Block(k=5, d=2).eval()
    dims = {
        0: torch.export.Dim("B", max=64),
        1: torch.export.Dim("H", max=512),
        2: torch.export.Dim("W", max=512),
    }
    ep = torch.export.export(model, (torch.randn(2, 12, 12, 32),), dynamic_shapes=(dims,))
    targets = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    assert targets.count(torch.ops.tdeploy.neighborhood_attention.default) == 1
    x = torch.randn(1, 7, 19, 32)
    torch.testing.assert_close(ep.module()(x), model(x), atol=0, rtol=0)  # the same reference op: bitwise


# ----------------------------------------------------------------------------------- TensorRT / PTX
ARCHS = (80, 86, 87, 89, 90)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_ptx_entry_matches_trt_aot_launch():
    """PTX params must be exactly what TRT's AOT launch passes: qkv, rpb (inputs), H, W (int32), out."""
    from tdeploy.plugins.neighborhood_attention import trt
    from tdeploy.plugins.triton_aot import entry_params

    specs = [
        dict(dtype=dt, num_heads=2, head_dim=hd, kernel_size=7, dilation=d, scale=hd**-0.5, arch=arch)
        for arch, dt, hd, d in zip(
            ARCHS,
            ["float16", "bfloat16", "float32", "float16", "float16"],
            [32, 40, 32, 64, 32],
            [1, 2, 1, 4, 8],
        )
    ]
    for spec, kernel in zip(specs, trt.compile_kernels([trt.kernel_config(**s) for s in specs])):
        name, params = entry_params(kernel.ptx)
        assert name == kernel.name and tuple(t for _, t in params) == trt.EXPECTED_PARAMS == kernel.params, spec
        entry = re.search(r"\.entry\s+\w+\s*\((.*?)\)", kernel.ptx, re.S).group(1)
        assert re.findall(r"\.param\s+\.(\w+)", entry) == ["u64", "u64", "u32", "u32", "u64"], spec
        target = re.search(r"\.target\s+(\w+)", kernel.ptx).group(1)
        assert target.startswith(f"sm_{spec['arch']}"), (target, spec)
        assert kernel.num_warps * 32 == 128 and kernel.shared >= 0


@pytest.mark.trt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_trt_engine_runs_the_plugin(precision):
    """The exported block through TensorRT with the QDP plugin at several sizes (borders, a map smaller
    than k*d), against the PyTorch *reference* backend on CPU (not the Triton kernel it embeds)."""
    from tdeploy.export.precision.fp16 import convert_to_fp16
    from tests.tensorrt.engine_check import build_qdp_engine, run_engine

    torch.manual_seed(0)
    model = _Block(k=3, d=2).eval()
    proto = _export(model, torch.randn(1, 8, 8, 32))
    if precision == "fp16":
        proto, _ = convert_to_fp16(proto)
    name = proto.graph.input[0].name
    data, layers = build_qdp_engine(proto, {name: ((1, 4, 4, 32), (1, 8, 8, 32), (2, 16, 16, 32))})
    assert layers["plugins"] == {"NeighborhoodAttention2D": 1}
    tol = 1e-3 if precision == "fp32" else 2e-2
    for shape in ((2, 11, 13, 32), (1, 5, 4, 32), (2, 16, 16, 32)):
        x = torch.randn(shape)
        (out,) = run_engine(data, {name: x})
        with torch.no_grad():
            want = model(x)  # CPU tensors: the reference backend
        torch.testing.assert_close(out.float().cpu(), want, atol=tol, rtol=tol)


# ------------------------------------------------------------------------------------ errors, API
@pytest.mark.parametrize(
    "shape,kw,match",
    [
        ((1, 8, 8, 96), dict(num_heads=2, kernel_size=4), "kernel_size must be an odd int >= 3"),
        ((1, 8, 8, 96), dict(num_heads=2, kernel_size=1), "kernel_size must be an odd int >= 3"),
        ((1, 8, 8, 96), dict(num_heads=2, kernel_size=3, dilation=0), "dilation must be an int >= 1"),
        ((1, 8, 8, 96), dict(num_heads=5, kernel_size=3), "must be 3 \\* num_heads \\* head_dim"),
        ((8, 8, 96), dict(num_heads=2, kernel_size=3), "qkv must be \\(B, H, W, 3\\*C\\)"),
        ((1, 8, 8, 96), dict(num_heads=2, kernel_size=3, backend="cuda"), "unknown backend 'cuda'"),
    ],
)
def test_bad_arguments_raise_one_line(shape, kw, match):
    with pytest.raises(TdeployError, match=match) as info:
        neighborhood_attention(torch.randn(shape), **kw)
    assert "\n" not in str(info.value)


def test_bad_rpb_and_dtype():
    qkv = torch.randn(1, 8, 8, 96)
    with pytest.raises(TdeployError, match=r"rpb must be \(num_heads, 2k-1, 2k-1\) = \(2, 5, 5\)"):
        neighborhood_attention(qkv, torch.zeros(2, 3, 3), num_heads=2, kernel_size=3)
    # float64 is taken now (the reference backend, for gradient checks; tests/plugins/test_input_checks.py)
    with pytest.raises(TdeployError, match="dtype torch.int32 is not supported"):
        neighborhood_attention(qkv.int(), num_heads=2, kernel_size=3)


def test_triton_without_gpu_or_interpreter_says_why(monkeypatch):
    import tdeploy.plugins.backends as backends

    monkeypatch.setattr(backends, "is_interpreted", lambda kernel: False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(BackendUnavailable, match="backend 'triton' cannot run: tensors are on cpu"):
        neighborhood_attention(torch.randn(1, 8, 8, 96), num_heads=2, kernel_size=3, backend="triton")


def test_default_backend_on_cpu_is_reference_through_the_custom_op():
    qkv, rpb = torch.randn(2, 9, 10, 96), torch.randn(2, 5, 5)
    got = neighborhood_attention(qkv, rpb, num_heads=2, kernel_size=3, dilation=2)
    want = neighborhood_attention_reference(qkv, rpb, num_heads=2, kernel_size=3, dilation=2)
    torch.testing.assert_close(got, want, atol=0, rtol=0)  # the same function behind the op: bitwise


def test_plugin_op_description():
    assert PLUGIN_OP.name == "NeighborhoodAttention2D"
    assert PLUGIN_OP.torch_op is torch.ops.tdeploy.neighborhood_attention.default
    assert PLUGIN_OP.onnx_translation is na_onnx.neighborhood_attention_translation
    assert PLUGIN_OP.onnx_function is na_onnx.NeighborhoodAttention2D
    assert (PLUGIN_OP.package_dir / "README.md").is_file()
