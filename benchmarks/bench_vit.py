"""vit-s16 at 224, batch 1 and 8: ONNX Runtime vs PyTorch eager (issue goal: >= 1.5x)."""

from __future__ import annotations

from pathlib import Path

from tdeploy.artifact.folder import open_artifact
from tdeploy.deploy.evaluate.bench import bench
from tdeploy.export import ExportOptions, export

ARTIFACT = Path("artifacts/bench/vit-s16")


def run(threads: int = 2) -> str:
    export("vit-s16", ARTIFACT, options=ExportOptions())
    report = bench(open_artifact(ARTIFACT), backends=["torch", "ort"], batches=[1, 8], threads=threads,
                   warmup=5, iters=40)
    return report.markdown()
