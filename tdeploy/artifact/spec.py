"""The export spec: what the exporter and the deployment runner need to know about a model variant.

An :class:`ExportSpec` travels from the model registry into the artifact's sidecar JSON, so that
``deploy validate``/``bench``/``build-engine`` can rebuild inputs, dynamic shapes and tolerances from
the artifact alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Task = Literal["classification", "super_resolution", "restoration", "features", "seq2seq"]


@dataclass(frozen=True)
class InputSpec:
    """One graph input.

    ``shape`` mixes ints (fixed) and names (dynamic axes): e.g. ("batch", 3, "height", "width").
    ``example`` is the concrete shape used for export and as the default validation shape.
    """

    name: str
    shape: tuple[int | str, ...]
    example: tuple[int, ...]
    dtype: str = "float32"
    kind: Literal["image", "tokens", "mask", "tensor"] = "image"
    # For kind="image": the range of the pixel values the model takes after preprocessing.
    low: float = -2.0
    high: float = 2.0

    def dynamic_axes(self) -> dict[int, str]:
        return {i: dim for i, dim in enumerate(self.shape) if isinstance(dim, str)}


@dataclass(frozen=True)
class Tolerance:
    """Per-output tolerance: an element passes when |a - b| <= atol + rtol * |b|."""

    atol: float
    rtol: float = 0.0


@dataclass(frozen=True)
class ExportSpec:
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    task: Task
    metric: str  # e.g. "top1_agreement", "psnr"
    # Spatial constraint of image inputs: height and width must be multiples of this, >= min_size.
    size_multiple: int = 1
    min_size: int = 1
    # Preprocessing a user applies before the graph (pixels in [0, 1] -> (x - mean) / std).
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    # Sizes (H, W) that `deploy validate` checks besides the export size when the artifact is dynamic.
    validate_sizes: tuple[tuple[int, int], ...] = ()
    # Tolerances of each precision against FP32 PyTorch; "" is the default for outputs not named.
    tolerances: dict[str, dict[str, Tolerance]] = field(default_factory=dict)
    # The metric's pass threshold per precision (e.g. top-1 agreement >= 0.99).
    metric_threshold: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def input(self, name: str) -> InputSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def tolerance(self, precision: str, output: str) -> Tolerance:
        table = self.tolerances.get(precision) or self.tolerances.get("fp32") or {}
        return table.get(output) or table.get("") or Tolerance(atol=1e-4, rtol=1e-3)

    def check_image_size(self, height: int, width: int) -> str | None:
        """None when the model takes (height, width); else a sentence saying which sizes it takes."""
        m, lo = self.size_multiple, self.min_size
        if height % m or width % m or height < lo or width < lo:
            what = f"multiples of {m}" if m > 1 else "sizes"
            return f"input size {height}x{width} is not supported: height and width must be {what} >= {lo}"
        return None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [asdict(i) | {"dynamic_axes": i.dynamic_axes()} for i in self.inputs]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportSpec:
        data = dict(data)
        inputs = []
        for item in data.pop("inputs"):
            item = {k: v for k, v in item.items() if k != "dynamic_axes"}
            item["shape"] = tuple(item["shape"])
            item["example"] = tuple(item["example"])
            inputs.append(InputSpec(**item))
        tolerances = {
            precision: {out: Tolerance(**tol) for out, tol in table.items()}
            for precision, table in data.pop("tolerances", {}).items()
        }
        return cls(
            inputs=tuple(inputs),
            outputs=tuple(data.pop("outputs")),
            mean=tuple(data.pop("mean", ())),
            std=tuple(data.pop("std", ())),
            validate_sizes=tuple(tuple(s) for s in data.pop("validate_sizes", ())),
            tolerances=tolerances,
            **data,
        )
