"""Interop with Polygraphy: the inputs validation ran and PyTorch's outputs, in its JSON formats.

Saved on a CPU machine, they let a TensorRT machine compare without tdeploy's model code:
``polygraphy run model.onnx --trt --load-inputs inputs.json --load-outputs torch_outputs.json``.
An artifact of several graphs (encoder + decoder) gets one file per graph, the graph's name before
the suffix (``inputs.encoder.json``, ``inputs.decoder.json``): Polygraphy runs one model at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

Records = dict[str, list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]]  # graph -> (feed, outputs)


def graph_file(path: str | Path, graph: str, graphs: int) -> Path:
    """``path`` for a one-graph artifact; ``stem.<graph>.suffix`` beside it otherwise."""
    path = Path(path)
    return path if graphs == 1 else path.with_name(f"{path.stem}.{graph}{path.suffix or '.json'}")


def save_polygraphy(records: Records, inputs_path: str | Path | None, outputs_path: str | Path | None) -> list[Path]:
    """Write the recorded feeds (Polygraphy's ``--load-inputs`` list) and PyTorch's outputs (a RunResults
    with one runner, ``torch``); the files written."""
    from polygraphy.comparator import RunResults
    from polygraphy.comparator.struct import IterationResult
    from polygraphy.json import to_json

    from tdeploy.artifact.atomic import atomic_write_text

    written = []
    for graph, pairs in records.items():
        if inputs_path:
            written.append(graph_file(inputs_path, graph, len(records)))
            atomic_write_text(written[-1], to_json([feed for feed, _ in pairs]))
        if outputs_path:
            results = RunResults()
            results.append(("torch", [IterationResult(outputs=dict(out), runner_name="torch") for _, out in pairs]))
            written.append(graph_file(outputs_path, graph, len(records)))
            atomic_write_text(written[-1], to_json(results))
    return written
