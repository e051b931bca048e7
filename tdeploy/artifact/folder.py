"""Resolving an ARTIFACT argument: a folder written by ``deploy export``, or a file in it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tdeploy.artifact.hashing import sha256_file
from tdeploy.artifact.onnx_file import external_data_path, load_onnx
from tdeploy.artifact.sidecar import SIDECAR_NAME, Sidecar
from tdeploy.errors import TdeployError

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


@dataclass
class Artifact:
    root: Path  # the artifact folder
    sidecar: Sidecar
    onnx: Path | None  # the ONNX file named (or the main graph's)
    engine: Path | None = None  # a TensorRT engine, when one was named

    def graph_path(self, graph: str = "model") -> Path:
        return self.root / self.sidecar.graphs[graph].file


def open_artifact(path: str | Path, *, check_onnx: bool = True) -> Artifact:
    """Find the sidecar and files for ``path``; one-line errors for anything unusable.

    ``check_onnx``: every graph must be a readable ONNX file whose sha256 is the one the sidecar
    recorded, so that a sidecar is never paired with a graph of another export."""
    path = Path(path)
    if not path.exists():
        raise TdeployError(f"artifact not found: {path} (give a folder written by `deploy export` or a file in it)")
    root = path if path.is_dir() else path.parent
    sidecar_path = root / SIDECAR_NAME
    if path.is_file() and path.suffix == ".onnx":
        # A bare ONNX file must at least be a readable model, sidecar or not.
        load_onnx(path, load_weights=False)
    if not sidecar_path.is_file():
        raise TdeployError(
            f"no {SIDECAR_NAME} beside {path}: tdeploy needs the sidecar written by `deploy export` "
            "(re-export the model, or keep model.json next to the ONNX file)"
        )
    try:
        sidecar = Sidecar.load(sidecar_path)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise TdeployError(f"{sidecar_path} is not a tdeploy sidecar ({type(exc).__name__}: {exc}); re-export") from None
    engine = path if path.is_file() and path.suffix in ENGINE_SUFFIXES else None
    onnx_path = path if path.is_file() and path.suffix == ".onnx" else root / sidecar.main.file
    if check_onnx:
        for info in sidecar.graphs.values():
            load_onnx(root / info.file, load_weights=False)
            files = [(root / info.file, info.sha256)]
            if info.data_sha256:
                files.append((external_data_path(root / info.file), info.data_sha256))
            for file, recorded in files:
                if not file.is_file():
                    raise TdeployError(f"{file} is missing (its graph's weights); re-export with `deploy export`")
                if recorded and (found := sha256_file(file)) != recorded:
                    raise TdeployError(
                        f"{file} is not the graph {SIDECAR_NAME} describes (sha256 {found[:12]}, recorded "
                        f"{recorded[:12]}): the folder mixes two exports or the file was edited; re-export it "
                        "with `deploy export`")
    return Artifact(root=root, sidecar=sidecar, onnx=onnx_path, engine=engine)
