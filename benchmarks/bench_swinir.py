"""swinir-lightweight-x4 on a 128x128 input, batch 1: ONNX Runtime vs PyTorch eager (goal: >= 1.3x)."""

from __future__ import annotations

from pathlib import Path

from tdeploy.artifact.folder import open_artifact
from tdeploy.deploy.evaluate.bench import bench
from tdeploy.export import ExportOptions, export

ARTIFACT = Path("artifacts/bench/swinir-lightweight-x4")


def run(threads: int = 2) -> str:
    export("swinir-lightweight-x4", ARTIFACT, options=ExportOptions())
    report = bench(open_artifact(ARTIFACT), backends=["torch", "ort"], batches=[1], threads=threads,
                   warmup=2, iters=10, size=(128, 128))
    return report.markdown()
