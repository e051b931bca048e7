"""GPU check for the neighborhood attention op: Triton vs reference, and timings.

``run(report)`` appends one dict per check / timing to ``report``:
- correctness of the Triton kernel against the reference (fp16, bf16, fp32; with rpb; dilated; small map);
- latency (CUDA events, median of several runs) of the fused Triton kernel, the unfused reference and
  natten's flex backend (``natten.na2d(..., backend="flex-fna")``, compiled; no rpb there, since
  natten >= 0.20 has none) at NAT-T's first level (B=32, 56x56, 2 heads, head_dim 32, k=7) and at
  DiNAT dilated layers (56x56 dilation 8; 28x28, 4 heads, dilation 4).

Needs a CUDA GPU; finishes in well under two minutes (compiles included). ``python -m
benchmarks.gpu_neighborhood_attention`` prints the report as JSON.
"""

from __future__ import annotations

import importlib.util
import json

import torch

from benchmarks.cuda_timing import cuda_median_ms
from tdeploy.plugins.neighborhood_attention import neighborhood_attention

# (name, B, H, W, heads, head_dim, kernel_size, dilation)
SHAPES = [
    ("nat-tiny level0", 32, 56, 56, 2, 32, 7, 1),
    ("dinat-tiny level0 d8", 32, 56, 56, 2, 32, 7, 8),
    ("dinat-tiny level1 d4", 32, 28, 28, 4, 32, 7, 4),
]
CHECKS = [  # (B, H, W, heads, head_dim, k, d): borders, dilation, non power-of-two head_dim, small map
    (2, 28, 30, 2, 32, 7, 1),
    (2, 33, 29, 3, 48, 5, 3),
    (1, 20, 24, 2, 32, 7, 4),  # 20 < k*d = 28: padded
    (1, 40, 40, 1, 128, 13, 2),
]
TOL = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 6e-2}



def _natten_flex(natten_reason: str | None):
    """A callable (qkv, heads, k, d) -> out for natten's flex backend, or None (reason in natten_reason)."""
    if natten_reason is not None:
        return None
    import natten

    def call(qkv, heads, k, d):
        B, H, W, C3 = qkv.shape
        q, key, v = qkv.view(B, H, W, 3, heads, C3 // (3 * heads)).unbind(3)
        return natten.na2d(q, key, v, kernel_size=k, dilation=d, backend="flex-fna", torch_compile=True)

    return call


def _check(report: list[dict]) -> None:
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        for B, H, W, heads, hd, k, d in CHECKS:
            qkv = torch.randn(B, H, W, 3 * heads * hd, device="cuda", dtype=dtype)
            rpb = torch.randn(heads, 2 * k - 1, 2 * k - 1, device="cuda", dtype=dtype)
            kw = dict(num_heads=heads, kernel_size=k, dilation=d)
            want = neighborhood_attention(qkv, rpb, backend="reference", **kw).float()
            got = neighborhood_attention(qkv, rpb, backend="triton", **kw)
            err = (got.float() - want).abs().max().item()
            report.append(
                {
                    "kind": "check",
                    "op": "neighborhood_attention",
                    "shape": f"B{B} {H}x{W} h{heads} d{hd} k{k} dil{d}",
                    "dtype": str(dtype).removeprefix("torch."),
                    "max_abs_err": err,
                    "tol": TOL[dtype],
                    "ok": bool(got.dtype == dtype and err <= TOL[dtype]),
                }
            )


def run(report: list[dict]) -> None:
    """Append correctness checks and timings for the neighborhood attention op to ``report``."""
    if not torch.cuda.is_available():
        report.append({"kind": "skip", "op": "neighborhood_attention", "reason": "no CUDA GPU"})
        return
    torch.manual_seed(0)
    _check(report)

    natten_reason = None if importlib.util.find_spec("natten") else "natten is not installed"
    natten_call = _natten_flex(natten_reason)
    for name, B, H, W, heads, hd, k, d in SHAPES:
        row, natten_reason = _time_shape(name, B, H, W, heads, hd, k, d, natten_call, natten_reason)
        if natten_reason is not None:
            natten_call = None  # failed once: skip it for the remaining shapes too
        report.append(row)
        torch.cuda.empty_cache()


def _time_shape(name, B, H, W, heads, hd, k, d, natten_call, natten_reason) -> tuple[dict, str | None]:
    """One timing row (fp16, rpb on for Triton / reference; off for the natten comparison)."""
    qkv = torch.randn(B, H, W, 3 * heads * hd, device="cuda", dtype=torch.float16)
    rpb = torch.randn(heads, 2 * k - 1, 2 * k - 1, device="cuda", dtype=torch.float16)
    kw = dict(num_heads=heads, kernel_size=k, dilation=d)
    row = {"kind": "timing", "op": "neighborhood_attention", "shape": name, "dtype": "float16"}
    row["triton_ms"] = cuda_median_ms(lambda: neighborhood_attention(qkv, rpb, backend="triton", **kw))
    row["triton_no_rpb_ms"] = cuda_median_ms(lambda: neighborhood_attention(qkv, None, backend="triton", **kw))
    row["reference_ms"] = cuda_median_ms(
        lambda: neighborhood_attention(qkv, rpb, backend="reference", **kw), iters=3
    )
    row["speedup_vs_reference"] = row["reference_ms"] / row["triton_ms"]
    if natten_call is not None:
        try:
            ref = neighborhood_attention(qkv, None, backend="triton", **kw)
            out = natten_call(qkv, heads, k, d).reshape(ref.shape)
            row["natten_flex_max_abs_err"] = (out.float() - ref.float()).abs().max().item()
            row["natten_flex_ms"] = cuda_median_ms(lambda: natten_call(qkv, heads, k, d))
            row["speedup_vs_natten_flex"] = row["natten_flex_ms"] / row["triton_no_rpb_ms"]
        except Exception as exc:  # natten's flex path depends on torch.compile on this machine
            natten_reason = f"natten flex failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    if "natten_flex_ms" not in row:
        row["natten_flex_ms"] = None
        row["natten_flex_skipped"] = natten_reason
    return row, natten_reason


if __name__ == "__main__":
    rows: list[dict] = []
    run(rows)
    print(json.dumps(rows, indent=1))
