"""The PyTorch reference of an artifact: the model it was exported from, rebuilt from its sidecar.

With the checkpoint the sidecar names (or one the user passes); without one, the seeded random weights
the export used (``build_model``'s INIT_SEED), so validation and benchmarks compare the same model. An
artifact exported without a checkpoint works end to end but its outputs mean nothing: every command
that produces or compares outputs says so in one line (:func:`random_weights_note`) and records it in
its report.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tdeploy.artifact.sidecar import Sidecar
from tdeploy.errors import TdeployError

RANDOM_WEIGHTS = ("{variant} has seeded random weights (exported without --checkpoint): its outputs mean "
                  "nothing; it is for trying the pipeline. Export with --checkpoint FILE for real outputs")


def reference_checkpoint(sidecar: Sidecar, checkpoint: str | Path | None = None) -> str | None:
    """``checkpoint``, else the sidecar's; one line when the sidecar's file has gone (never random weights
    in place of a checkpoint the artifact was exported from)."""
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise TdeployError(f"--checkpoint {checkpoint}: no such file")
        return str(checkpoint)
    if sidecar.checkpoint and not Path(sidecar.checkpoint).is_file():
        raise TdeployError(f"the checkpoint {sidecar.variant} was exported from ({sidecar.checkpoint}) is gone: "
                           "pass --checkpoint PATH")
    return sidecar.checkpoint


def reference_model(sidecar: Sidecar, checkpoint: str | Path | None = None):
    """The PyTorch model the artifact was exported from (eval mode)."""
    from tdeploy.export.onnx_export import build_model

    return build_model(sidecar.variant, reference_checkpoint(sidecar, checkpoint), sidecar.overrides).eval()


def weights_description(sidecar: Sidecar, checkpoint: str | Path | None = None) -> str:
    """What the reference's weights are, for reports: the checkpoint (and its sha256) or random."""
    if checkpoint is not None:
        return f"checkpoint {checkpoint} (passed; the artifact's graphs hold {_artifact_weights(sidecar)})"
    return _artifact_weights(sidecar)


def _artifact_weights(sidecar: Sidecar) -> str:
    if not sidecar.checkpoint:
        return "seeded random weights (exported without --checkpoint)"
    sha = f" (sha256 {sidecar.checkpoint_sha256[:12]})" if sidecar.checkpoint_sha256 else ""
    return f"checkpoint {sidecar.checkpoint}{sha}"


def has_random_weights(sidecar: Sidecar) -> bool:
    """The artifact's graphs hold random weights (what a reference built with --checkpoint cannot change)."""
    return not sidecar.checkpoint


def random_weights_note(sidecar: Sidecar) -> str | None:
    """The one-line note for an artifact with random weights, else None."""
    return RANDOM_WEIGHTS.format(variant=sidecar.variant) if has_random_weights(sidecar) else None


def warn_random_weights(sidecar: Sidecar) -> None:
    """Print :func:`random_weights_note` on stderr as ``note: ...`` when it applies."""
    if note := random_weights_note(sidecar):
        print(f"note: {note}", file=sys.stderr, flush=True)
