"""``deploy validate``: the artifact's backends against the PyTorch model, on the same seeded inputs.

For each (size, sample) the PyTorch model rebuilt from the sidecar runs once; every backend runs the
same inputs and is compared output by output (max abs/rel error, cosine, tolerance from the spec for
the artifact's precision) and with the task metric (top-1 agreement, PSNR/SSIM, ...).
"""

from __future__ import annotations

import numpy as np

from tdeploy.artifact.folder import Artifact
from tdeploy.artifact.spec import ExportSpec
from tdeploy.deploy.backends import make_runner
from tdeploy.deploy.evaluate.metrics import METRICS, TASK_METRICS
from tdeploy.deploy.evaluate.results import CaseResult, ValidationReport
from tdeploy.deploy.evaluate.validate_seq2seq import validate_seq2seq
from tdeploy.deploy.reference import reference_model, weights_description
from tdeploy.errors import TdeployError
from tdeploy.export.onnx_export import example_inputs
from tdeploy.runtime.compare import compare
from tdeploy.runtime.recording import RecordingRunner


def _sizes(artifact: Artifact, spec: ExportSpec, sizes: list[tuple[int, int]] | None) -> list[tuple[int, int] | None]:
    image = next((i for i in spec.inputs if i.kind == "image"), None)
    if image is None:
        return [None]
    export_hw = tuple(image.example[-2:])
    if not artifact.sidecar.dynamic_size:
        if sizes and any(tuple(s) != export_hw for s in sizes):
            raise TdeployError(
                f"{artifact.root} was exported at a static {export_hw[0]}x{export_hw[1]}; re-export with "
                "--dynamic-size to validate other sizes"
            )
        return [export_hw]
    wanted = [tuple(s) for s in sizes] if sizes else [export_hw, *[tuple(s) for s in spec.validate_sizes]]
    for hw in wanted:
        if why := spec.check_image_size(*hw):
            raise TdeployError(f"{why} ({artifact.sidecar.variant})")
    return list(dict.fromkeys(wanted))


def validate(
    artifact: Artifact,
    *,
    backends: list[str],
    checkpoint: str | None = None,
    batch: int = 1,
    sizes: list[tuple[int, int]] | None = None,
    samples: int = 1,
    seed: int = 0,
    threads: int = 0,
    record: dict[str, list] | None = None,
) -> ValidationReport:
    """Every backend against PyTorch on seeded inputs at each size. ``record``: filled with, per graph, the
    ``(feed, PyTorch outputs)`` pairs the comparison ran (for Polygraphy files)."""
    if "torch" in backends:
        raise TdeployError("--backends torch: validate compares each backend with PyTorch, so that compares "
                           "PyTorch with itself; choose from ort, trt")
    if not backends:
        raise TdeployError("--backends: name at least one backend to compare with PyTorch (ort, trt)")
    sc = artifact.sidecar
    if sc.main.export_spec().task == "seq2seq":
        return validate_seq2seq(artifact, backends=backends, checkpoint=checkpoint, batch=batch,
                                samples=samples, seed=seed, threads=threads, record=record)
    model = reference_model(sc, checkpoint)
    graphs = list(sc.graphs)
    spec = sc.graphs[graphs[0]].export_spec()
    report = ValidationReport(
        artifact=str(artifact.root),
        variant=sc.variant,
        task=spec.task,
        precision=sc.precision,
        backends=list(backends),
        main_metric=spec.metric,
        metric_threshold=spec.metric_threshold.get(sc.precision, spec.metric_threshold.get("fp32", 0.0)),
        weights=weights_description(sc, checkpoint),
    )
    for graph in graphs:
        spec = sc.graphs[graph].export_spec()
        module = model if graph == "model" else model.export_graphs()[graph][0]
        torch_runner = make_runner("torch", artifact, graph, torch_module=module, threads=threads)
        if record is not None:
            torch_runner = RecordingRunner(torch_runner)
        runners = {b: make_runner(b, artifact, graph, threads=threads, torch_module=module) for b in backends}
        with torch_runner:
            for r in runners.values():
                r.activate()
            try:
                case_index = 0
                for size in _sizes(artifact, spec, sizes):
                    for sample in range(samples):
                        tensors = example_inputs(spec, size, seed=seed + sample, batch=batch)
                        feed = {i.name: t.numpy() for i, t in zip(spec.inputs, tensors)}
                        ref = torch_runner.infer(feed)
                        for backend, runner in runners.items():
                            got = runner.infer(feed)
                            report.cases.append(_case(report, spec, backend, graph, size, batch, sample, got, ref, feed))
                        case_index += 1
            finally:
                for r in runners.values():
                    r.deactivate()
        if record is not None:
            record[graph] = torch_runner.records
    return report


def _case(report: ValidationReport, spec: ExportSpec, backend: str, graph: str, size, batch: int, sample: int,
          got: dict[str, np.ndarray], ref: dict[str, np.ndarray], feed: dict[str, np.ndarray]) -> CaseResult:
    outputs = []
    metrics: dict[str, float] = {}
    for name in spec.outputs:
        g = got[name].astype(np.float32)
        r = ref[name].astype(np.float32)
        outputs.append(compare(name, g, r, spec.tolerance(report.precision, name)))
        key = f"{backend}/{name}"
        err = np.abs(g.astype(np.float64) - r.astype(np.float64)).ravel()
        report.errors[key] = np.concatenate([report.errors[key], err]) if key in report.errors else err
        for metric in dict.fromkeys((spec.metric, *TASK_METRICS.get(spec.task, ()))):
            if metric in METRICS and name == spec.outputs[0]:
                metrics[metric] = METRICS[metric](g, r)
        if spec.task in ("super_resolution", "restoration") and name == spec.outputs[0] and sample == 0:
            report.images.append({"backend": backend, "size": size, "input": feed[spec.inputs[0].name][0],
                                  "reference": r[0], "output": g[0]})
    main = metrics.get(spec.metric)
    metric_ok = main is None or bool(main >= report.metric_threshold)  # numpy metrics give np.bool_
    passed = all(o.within_tolerance for o in outputs) and metric_ok
    label = f"{size[0]}x{size[1]}" if size else "-"
    return CaseResult(backend, graph, label, batch, sample, outputs, metrics, passed)
