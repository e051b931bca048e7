"""The results of ``deploy validate``: one :class:`CaseResult` per (backend, graph, size, sample), and the
:class:`ValidationReport` that holds them and decides pass or fail."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from tdeploy.runtime.compare import OutputComparison


@dataclass
class CaseResult:
    backend: str
    graph: str
    size: str  # "HxW" of image inputs, "-" for others
    batch: int
    sample: int
    outputs: list[OutputComparison]
    metrics: dict[str, float]
    passed: bool

    def to_json(self) -> dict:
        data = asdict(self)
        data["outputs"] = [o.to_json() for o in self.outputs]
        return data


@dataclass
class ValidationReport:
    artifact: str
    variant: str
    task: str
    precision: str
    backends: list[str]
    main_metric: str
    metric_threshold: float
    weights: str = ""  # what the reference and the artifact hold: a checkpoint, or seeded random weights
    cases: list[CaseResult] = field(default_factory=list)
    # Arrays kept for the HTML report (errors for histograms, images for restoration tasks).
    errors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    images: list[dict] = field(default_factory=list, repr=False)
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.passed for c in self.cases)

    def summary(self) -> str:
        failed = [c for c in self.cases if not c.passed]
        worst = max((o.max_abs for c in self.cases for o in c.outputs), default=0.0)
        metric_values = [c.metrics.get(self.main_metric) for c in self.cases if self.main_metric in c.metrics]
        metric = f", worst {self.main_metric} {min(metric_values):.4g}" if metric_values else ""
        head = "PASS" if self.passed else "FAIL"
        detail = (
            f"{len(failed)}/{len(self.cases)} cases out of tolerance (first: {failed[0].backend} at "
            f"{failed[0].size}, batch {failed[0].batch})"
            if failed
            else f"{len(self.cases)} cases within tolerance"
        )
        return f"{head} {self.variant} [{self.precision}]: {detail}; max abs error {worst:.3g}{metric}"

    def to_json(self) -> dict:
        return {
            "artifact": self.artifact,
            "variant": self.variant,
            "task": self.task,
            "precision": self.precision,
            "backends": self.backends,
            "main_metric": self.main_metric,
            "metric_threshold": self.metric_threshold,
            "weights": self.weights,
            "random_weights": self.weights.startswith("seeded random"),
            "passed": self.passed,
            "summary": self.summary(),
            "cases": [c.to_json() for c in self.cases],
            **self.extra,
        }
