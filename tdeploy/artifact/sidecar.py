"""The JSON file written beside every exported ONNX: what it is and how to feed it.

``deploy validate``/``bench``/``build-engine`` rebuild the PyTorch model, inputs, dynamic shapes and
tolerances from this file alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tdeploy.artifact.spec import ExportSpec

SIDECAR_NAME = "model.json"
SCHEMA_VERSION = 1


@dataclass
class GraphInfo:
    """One ONNX file of the artifact (most have one, ``model``; seq2seq has encoder and decoder)."""

    file: str
    sha256: str
    spec: dict[str, Any]  # ExportSpec.to_json()
    custom_ops: list[str] = field(default_factory=list)  # e.g. ["tdeploy::WindowAttention"]
    data_sha256: str | None = None  # of the external weights ``<file>.data``, for graphs past 2 GiB

    def export_spec(self) -> ExportSpec:
        return ExportSpec.from_json(self.spec)


@dataclass
class Sidecar:
    model: str  # the name given (may be a family alias)
    variant: str  # the registry variant that was built
    family: str
    graphs: dict[str, GraphInfo]
    opset: int
    precision: str = "fp32"
    plugins: bool = True  # custom tdeploy nodes (False: --no-plugins, standard ops only)
    dynamic_batch: bool = True
    dynamic_size: bool = True
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # model config overrides used at export
    tdeploy_version: str = ""
    torch_version: str = ""
    onnx_version: str = ""
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # precision passes, quantized layers, ...

    @property
    def main(self) -> GraphInfo:
        return self.graphs.get("model") or next(iter(self.graphs.values()))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Sidecar:
        data = json.loads(text)
        data["graphs"] = {k: GraphInfo(**v) for k, v in data["graphs"].items()}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: str | Path) -> Sidecar:
        return cls.from_json(Path(path).read_text())
