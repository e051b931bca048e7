"""Interop with Polygraphy: inputs and reference outputs in its JSON formats.

Saved on a CPU machine, they let a TensorRT machine compare without tdeploy's model code:
``polygraphy run model.onnx --trt --load-inputs inputs.json --load-outputs torch_outputs.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tdeploy.export.onnx_export import example_inputs


def save_polygraphy(artifact, report, refs: list[dict[str, np.ndarray]], inputs_path, outputs_path, *,
                    batch: int, samples: int) -> None:
    from polygraphy.comparator import RunResults
    from polygraphy.comparator.struct import IterationResult
    from polygraphy.json import save_json

    spec = artifact.sidecar.main.export_spec()
    sizes = list(dict.fromkeys(c.size for c in report.cases))
    feeds = []
    for size in sizes:
        hw = tuple(int(v) for v in size.split("x")) if size != "-" else None
        for sample in range(samples):
            tensors = example_inputs(spec, hw, seed=sample, batch=batch)
            feeds.append({i.name: t.numpy() for i, t in zip(spec.inputs, tensors)})
    if inputs_path:
        Path(inputs_path).parent.mkdir(parents=True, exist_ok=True)
        save_json(feeds, str(inputs_path), description="tdeploy validation inputs")
    if outputs_path:
        results = RunResults()
        results.append(("torch", [IterationResult(outputs=dict(r), runner_name="torch") for r in refs]))
        Path(outputs_path).parent.mkdir(parents=True, exist_ok=True)
        results.save(str(outputs_path))
