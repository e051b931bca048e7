"""nat-tiny at 224, batch 1 and 8: ONNX Runtime vs PyTorch eager (issue 8 goal: >= 1.5x).

Random seeded weights (no checkpoint is needed for latency). Both backends run the same math: in
PyTorch the neighborhood attention op's reference backend, in ONNX Runtime its model-local function.
"""

from __future__ import annotations

from pathlib import Path

from tdeploy.artifact.folder import open_artifact
from tdeploy.deploy.evaluate.bench import bench
from tdeploy.export import ExportOptions, export

ARTIFACT = Path("artifacts/bench/nat-tiny")


def run(threads: int = 2) -> str:
    export("nat-tiny", ARTIFACT, options=ExportOptions())
    report = bench(open_artifact(ARTIFACT), backends=["torch", "ort"], batches=[1, 8], threads=threads,
                   warmup=2, iters=10)
    return report.markdown()
