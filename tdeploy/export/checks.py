"""Checks every exported graph passes before it is written: onnx.checker (full), shape inference,
and an ONNX Runtime run compared against PyTorch at the export shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from tdeploy.artifact.spec import ExportSpec
from tdeploy.errors import TdeployError
from tdeploy.runtime.compare import compare
from tdeploy.runtime.ort_runner import OrtRunner


def check_model(path: str | Path) -> onnx.ModelProto:
    """onnx.checker with full_check (includes strict shape inference); returns the inferred model."""
    try:
        onnx.checker.check_model(str(path), full_check=True)  # from the path: external data of any size
        # Shapes need no weight values: the tensors' dims are in the graph even when their data is external.
        return onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False), check_type=True,
                                                 strict_mode=True)
    except Exception as exc:  # checker/inference errors are multi-line: keep the first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TdeployError(f"exported graph {Path(path).name} fails the ONNX checker: {first}") from None


def check_against_torch(module: nn.Module, spec: ExportSpec, path: Path, args, precision: str = "fp32") -> None:
    """Run the saved file in ONNX Runtime at the export shape and compare with PyTorch."""
    with torch.no_grad():
        ref = module(*args)
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    ref = {name: t.detach().float().numpy() for name, t in zip(spec.outputs, ref)}
    feed = {i.name: a.numpy() for i, a in zip(spec.inputs, args)}
    with OrtRunner(path, threads=0) as runner:
        got = runner.infer(feed)
    bad = []
    for name in ref:  # the tolerance deploy validate uses for this precision, no wider
        if got[name].shape != ref[name].shape:
            bad.append(f"{name}: shape {got[name].shape} != {ref[name].shape}")
            continue
        result = compare(name, got[name].astype(np.float32), ref[name], spec.tolerance(precision, name))
        if not result.within_tolerance:
            bad.append(result.describe())
    if bad:
        raise TdeployError(f"exported {path.name} disagrees with PyTorch in ONNX Runtime: {'; '.join(bad)}")
