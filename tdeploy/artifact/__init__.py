"""Layer 0 -- the artifact: what ``deploy export`` writes and every later step reads.

- ``spec.py``: the export spec (inputs, outputs, task, tolerances) of a model variant;
- ``sidecar.py``: ``model.json``, the sidecar beside the ONNX graphs;
- ``folder.py``: opening an ARTIFACT argument (a folder, or a file in it);
- ``onnx_file.py``: reading an ONNX file with one clear error;
- ``hashing.py``: sha256 of files; ``atomic.py``: atomic writes and staged folders.

May import: ``tdeploy.errors`` only (and third-party packages).
"""

from tdeploy.artifact.folder import Artifact, open_artifact
from tdeploy.artifact.sidecar import SIDECAR_NAME, GraphInfo, Sidecar
from tdeploy.artifact.spec import ExportSpec, InputSpec, Tolerance

__all__ = ["SIDECAR_NAME", "Artifact", "ExportSpec", "GraphInfo", "InputSpec", "Sidecar", "Tolerance", "open_artifact"]
