"""`make gpu-check`: the Triton kernels on a CUDA GPU, checked against their references and timed
against the baselines each op's issue names, and the C++ plugin library's plugins driven on device
buffers (build/cpp from `make cpp`, carried to the GPU machine). Writes the GPU section of
docs/benchmarks.md.

Run with the GPU machine's own python and the project on PYTHONPATH (nothing is installed):
``PYTHONPATH=. python3 -m benchmarks.gpu_check``. Each op module exposes ``run(rows)`` (appends one
dict per shape x dtype, with a ``max_err``/``ok`` check against the reference) and
``markdown(rows)``. Exit status 1 when any kernel disagrees with its reference.
"""

from __future__ import annotations

import datetime
import importlib
import sys
import time
import traceback
from pathlib import Path

from benchmarks.report_sections import write_section

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
OPS = {
    "window attention": "benchmarks.gpu_window_attention",
    "neighborhood attention": "benchmarks.gpu_neighborhood_attention",
    "C++ plugin library (plugin_harness, no TensorRT)": "benchmarks.gpu_plugin_library",
}


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU visible (torch.cuda.is_available() is False); run it on a GPU machine",
              file=sys.stderr)
        return 2
    import triton

    card = torch.cuda.get_device_name()
    stamp = datetime.date.today().isoformat()
    sections, failed = [], []
    for title, module_name in OPS.items():
        start = time.time()
        rows: list[dict] = []
        try:
            module = importlib.import_module(module_name)
            module.run(rows)
            table = module.markdown(rows)
        except Exception:  # one op failing must not hide the other's numbers
            failed.append(title)
            table = "```\n" + traceback.format_exc(limit=4) + "```\n"
        if any(not r.get("ok", True) for r in rows):
            failed.append(title)
        sections.append(f"### {title} ({time.time() - start:.0f} s)\n\n{table}")
        print(sections[-1], flush=True)
    body = (f"## GPU: {card} ({stamp})\n\ntorch {torch.__version__}, Triton {triton.__version__}, CUDA "
            f"{torch.version.cuda}. Times are CUDA-event medians; GB/s counts the bytes each kernel must move.\n\n"
            + "\n".join(sections))
    write_section(DOC, "gpu-check", body, title="Benchmarks")
    print(f"updated {DOC}", file=sys.stderr)
    if failed:
        print(f"gpu-check: FAILED for {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
