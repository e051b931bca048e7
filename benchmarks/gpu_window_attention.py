"""GPU check of the fused window attention: correctness vs the reference, then timings and GB/s.

    python -m benchmarks.gpu_window_attention          # prints a Markdown table
    from benchmarks.gpu_window_attention import run; rows = []; run(rows)

``run(report)`` appends one dict per (shape, dtype) to ``report``: max error vs the reference, ms of
the Triton kernel, the unfused reference and torch SDPA (bias + mask as attn_mask), the speed-ups,
achieved GB/s (bytes: qkv read + out write + bias + mask, each once) and % of the card's peak.
Needs a CUDA GPU; finishes in well under 2 minutes including Triton compiles.
"""

from __future__ import annotations

import datetime
from functools import partial

import torch

from benchmarks.cuda_timing import cuda_median_ms

# (name, images B, windows per image nW, tokens N, heads, head_dim)
SHAPES = [
    ("swin_t_stage1", 64, 64, 49, 3, 32),
    ("swin_b_stage1", 64, 64, 49, 4, 32),
    ("swinir", 16, 64, 64, 6, 30),  # B*nW = 1024
]
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
TOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2}

# Peak HBM bandwidth in GB/s by device-name substring (first match wins).
PEAK_GBPS = [("H200", 4800.0), ("H100 PCIe", 2000.0), ("H100", 3350.0), ("A100-SXM4-80GB", 2039.0),
             ("A100", 1555.0), ("L40S", 864.0), ("L4", 300.0), ("RTX 4090", 1008.0)]


def peak_gbps(device_name: str) -> float | None:
    for key, value in PEAK_GBPS:
        if key.lower() in device_name.lower():
            return value
    return None


def bytes_moved(windows: int, n: int, heads: int, head_dim: int, n_win: int, elt: int) -> int:
    c = heads * head_dim
    return elt * (windows * n * 3 * c + windows * n * c + heads * n * n + n_win * n * n)



def _sdpa(qkv, bias, mask, heads):
    windows, n, three_c = qkv.shape
    q, k, v = qkv.view(windows, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
    attn_mask = (bias.unsqueeze(0).unsqueeze(0) + mask.unsqueeze(1).unsqueeze(0)).expand(
        windows // mask.shape[0], -1, -1, -1, -1).reshape(windows, heads, n, n)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    return out.transpose(1, 2).reshape(windows, n, -1)


def run(report: list[dict]) -> None:
    """Check and time every shape x dtype on the current CUDA device; append rows to ``report``."""
    from tdeploy.plugins.window_attention.reference import window_attention_reference
    from tdeploy.plugins.window_attention.triton import window_attention_triton

    if not torch.cuda.is_available():
        raise RuntimeError("benchmarks.gpu_window_attention needs a CUDA GPU")
    name = torch.cuda.get_device_name()
    peak = peak_gbps(name)
    for label, b, n_win, n, heads, d in SHAPES:
        windows = b * n_win
        for dtype in DTYPES:
            g = torch.Generator(device="cuda").manual_seed(0)
            qkv = torch.randn(windows, n, 3 * heads * d, device="cuda", dtype=dtype, generator=g)
            bias = torch.randn(heads, n, n, device="cuda", dtype=dtype, generator=g)
            mask = torch.where(torch.rand(n_win, n, n, device="cuda", generator=g) > 0.3, 0.0, -100.0).to(dtype)
            scale = d**-0.5
            out = window_attention_triton(qkv, bias, mask, heads, scale)
            ref = window_attention_reference(qkv.float(), bias.float(), mask.float(), heads, scale)
            err = ((out.float() - ref).abs().max() / ref.abs().max().clamp_min(1)).item()
            t_triton = cuda_median_ms(partial(window_attention_triton, qkv, bias, mask, heads, scale))
            t_ref = cuda_median_ms(partial(window_attention_reference, qkv, bias, mask, heads, scale))
            t_sdpa = cuda_median_ms(partial(_sdpa, qkv, bias, mask, heads))
            moved = bytes_moved(windows, n, heads, d, n_win, qkv.element_size())
            gbps = moved / (t_triton * 1e-3) / 1e9
            report.append({
                "device": name, "date": datetime.date.today().isoformat(), "shape": label,
                "dtype": str(dtype).replace("torch.", ""), "windows": windows, "N": n, "heads": heads,
                "head_dim": d, "max_err": err, "ok": err <= TOL[dtype], "triton_ms": t_triton,
                "reference_ms": t_ref, "sdpa_ms": t_sdpa, "speedup_vs_reference": t_ref / t_triton,
                "speedup_vs_sdpa": t_sdpa / t_triton, "GBps": gbps,
                "pct_peak": None if peak is None else 100 * gbps / peak,
            })


def markdown(report: list[dict]) -> str:
    cols = ["shape", "dtype", "max_err", "ok", "triton_ms", "reference_ms", "sdpa_ms", "speedup_vs_reference",
            "speedup_vs_sdpa", "GBps", "pct_peak"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in report:
        cells = [f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    rows: list[dict] = []
    run(rows)
    print(f"{rows[0]['device']}, {rows[0]['date']}\n")
    print(markdown(rows))
    if not all(r["ok"] for r in rows):
        raise SystemExit("some Triton results differ from the reference beyond tolerance")
