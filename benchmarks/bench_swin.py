"""swin-t at 224, batch 1 and 8: ONNX Runtime vs PyTorch eager (issue goal: >= 1.5x)."""

from __future__ import annotations

from pathlib import Path

from tdeploy.artifact.folder import open_artifact
from tdeploy.deploy.evaluate.bench import bench
from tdeploy.export import ExportOptions, export

ARTIFACT = Path("artifacts/bench/swin-t")


def run(threads: int = 2) -> str:
    export("swin-t", ARTIFACT, options=ExportOptions())
    report = bench(open_artifact(ARTIFACT), backends=["torch", "ort"], batches=[1, 8], threads=threads,
                   warmup=3, iters=20)
    return report.markdown()
