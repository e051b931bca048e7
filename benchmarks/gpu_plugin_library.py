"""GPU check of the C++ plugin library (``build/cpp``, made by ``make cpp`` on the development machine and
carried to the GPU machine): each plugin, driven by ``plugin_harness`` without TensorRT, against the
PyTorch reference, and its kernel time against the same Triton kernel launched from PyTorch.

    from benchmarks.gpu_plugin_library import run; rows = []; run(rows)

The harness creates the plugin through its creator with the node's fields and kernels compiled here for
this GPU (``plugins/<op>/cpp.py``), checks formats, configures, enqueues on device buffers, re-creates
the plugin from its serialized fields and runs again (bitwise equal), and times its enqueue with CUDA
events. ``triton_ms`` times the PyTorch launcher on the same inputs: the ratio shows what the C++
launch costs or saves (the kernel is the same source).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.cuda_timing import cuda_median_ms
from tdeploy.plugins.cpp_kernels import serialize

BUILD = Path(__file__).resolve().parents[1] / "build" / "cpp"
TOL = {torch.float32: 1e-4, torch.float16: 5e-3}

# (label, op, input shape, attributes)
CASES = [
    ("swin-t stage 1", "WindowAttention", dict(windows=64 * 64, n=49, heads=3, head_dim=32, n_win=64)),
    ("swin-b-384", "WindowAttention", dict(windows=16 * 144, n=144, heads=4, head_dim=32, n_win=144)),
    ("nat-tiny level 1", "NeighborhoodAttention2D", dict(b=16, h=56, w=56, heads=2, head_dim=32, k=7, d=1)),
    ("dinat-tiny level 1", "NeighborhoodAttention2D", dict(b=16, h=56, w=56, heads=2, head_dim=32, k=7, d=8)),
]


def _cc() -> int:
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor



def _inputs(op: str, cfg: dict, dtype: torch.dtype):
    g = torch.Generator(device="cuda").manual_seed(0)
    c = cfg["heads"] * cfg["head_dim"]
    if op == "WindowAttention":
        n = cfg["n"]
        qkv = torch.randn(cfg["windows"], n, 3 * c, device="cuda", dtype=dtype, generator=g)
        bias = torch.randn(cfg["heads"], n, n, device="cuda", dtype=dtype, generator=g)
        mask = torch.where(torch.rand(cfg["n_win"], n, n, device="cuda", generator=g) > 0.3, 0.0, -100.0).to(dtype)
        return [qkv, bias, mask]
    qkv = torch.randn(cfg["b"], cfg["h"], cfg["w"], 3 * c, device="cuda", dtype=dtype, generator=g)
    rpb = torch.randn(cfg["heads"], 2 * cfg["k"] - 1, 2 * cfg["k"] - 1, device="cuda", dtype=dtype, generator=g)
    return [qkv, rpb]


def run(report: list[dict]) -> None:
    from tdeploy.plugins.neighborhood_attention import cpp as na_cpp
    from tdeploy.plugins.neighborhood_attention.reference import neighborhood_attention_reference
    from tdeploy.plugins.neighborhood_attention.triton import neighborhood_attention_triton
    from tdeploy.plugins.window_attention import cpp as wa_cpp
    from tdeploy.plugins.window_attention.reference import window_attention_reference
    from tdeploy.plugins.window_attention.triton import window_attention_triton

    harness = BUILD / "plugin_harness"
    if not harness.is_file():
        raise RuntimeError(f"{harness} is missing: run `make cpp` on the development machine and carry build/cpp")
    for label, op, cfg in CASES:
        for dtype in (torch.float16, torch.float32):
            inputs = _inputs(op, cfg, dtype)
            scale = cfg["head_dim"] ** -0.5
            if op == "WindowAttention":
                attrs_i, attrs_f = {"num_heads": cfg["heads"]}, {"scale": scale}
                records = wa_cpp.kernel_records({**attrs_i, **attrs_f}, {"qkv": tuple(inputs[0].shape),
                                                                      "mask": tuple(inputs[2].shape)},
                                                [str(dtype).replace("torch.", "")], [_cc()])
                ref = window_attention_reference(*[x.float() for x in inputs], cfg["heads"], scale)
                launcher = lambda: window_attention_triton(*inputs, cfg["heads"], scale)  # noqa: B023, E731
            else:
                attrs_i = {"num_heads": cfg["heads"], "kernel_size": cfg["k"], "dilation": cfg["d"]}
                attrs_f = {"scale": scale}
                records = na_cpp.kernel_records({**attrs_i, **attrs_f}, {"qkv": tuple(inputs[0].shape)},
                                                [str(dtype).replace("torch.", "")], [_cc()])
                kw = dict(num_heads=cfg["heads"], kernel_size=cfg["k"], dilation=cfg["d"], scale=scale)
                ref = neighborhood_attention_reference(*[x.float() for x in inputs], **kw)
                launcher = lambda: neighborhood_attention_triton(*inputs, **kw)  # noqa: B023, E731
            with tempfile.TemporaryDirectory() as tmp:
                tmp = Path(tmp)
                (tmp / "kernels.txt").write_text(serialize(records))
                args = [str(harness), op, "--kernels", str(tmp / "kernels.txt"), "--output", str(tmp / "out.npy"),
                        "--iters", "50"]
                for k, v in attrs_i.items():
                    args += ["--int", f"{k}={v}"]
                for k, v in attrs_f.items():
                    args += ["--float", f"{k}={v!r}"]
                for i, x in enumerate(inputs):
                    np.save(tmp / f"in{i}.npy", x.cpu().numpy())
                    args += ["--input", str(tmp / f"in{i}.npy")]
                proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
                if proc.returncode != 0:
                    raise RuntimeError(f"plugin_harness {op} {label}: {proc.stdout[-500:]} {proc.stderr[-1500:]}")
                got = torch.from_numpy(np.load(tmp / "out.npy")).float()
            median = next(float(ln.split()[1]) for ln in proc.stdout.splitlines() if ln.startswith("median"))
            err = ((got - ref.cpu()).abs().max() / ref.abs().max().clamp_min(1)).item()
            report.append({"case": label, "op": op, "dtype": str(dtype).replace("torch.", ""), "max_err": err,
                           "ok": err <= TOL[dtype], "plugin_ms": median, "triton_ms": cuda_median_ms(launcher),
                           "kernel_shared_bytes": records[0].fields["shared"]})


def markdown(report: list[dict]) -> str:
    cols = ["case", "op", "dtype", "max_err", "ok", "plugin_ms", "triton_ms", "kernel_shared_bytes"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in report:
        lines.append("| " + " | ".join(f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c])
                                       for c in cols) + " |")
    return "\n".join(lines)
