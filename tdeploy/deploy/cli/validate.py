"""``deploy validate``: every backend of an artifact against PyTorch, with a report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tdeploy.deploy.cli.options import backends_option, parse_size, status


@click.command("validate")
@click.argument("artifact", type=click.Path())
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Checkpoint for the PyTorch reference.")
@click.option("--backends", default="ort", show_default=True, help="Comma-separated: ort, trt.")
@click.option("--batch", default=1, show_default=True, type=int)
@click.option("--size", "sizes", multiple=True, help="HxW to check (repeatable) [export size + the spec's].")
@click.option("--samples", default=1, show_default=True, type=int, help="Seeded inputs per size.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), help="Folder for report.{json,md,html}.")
@click.option("--threads", default=0, type=int, help="CPU threads for ONNX Runtime/PyTorch [all].")
@click.option("--save-outputs", type=click.Path(dir_okay=False),
              help="Save PyTorch's outputs as Polygraphy RunResults JSON (with --save-inputs, for `polygraphy run "
                   "--load-inputs ... --load-outputs ...` on a TensorRT machine).")
@click.option("--save-inputs", type=click.Path(dir_okay=False), help="Save the inputs as Polygraphy JSON.")
def validate(artifact, checkpoint, backends, batch, sizes, samples, report_dir, threads, save_outputs,
             save_inputs) -> None:
    """Compare ARTIFACT's backends with PyTorch; exit 1 when anything is out of tolerance."""
    from tdeploy.artifact.folder import open_artifact
    from tdeploy.deploy.evaluate.report import write_validation_report
    from tdeploy.deploy.evaluate.validate import validate as run_validation
    from tdeploy.deploy.reference import warn_random_weights

    art = open_artifact(artifact)
    record: dict | None = {} if save_outputs or save_inputs else None
    with status(f"validating {art.sidecar.variant}"):
        report = run_validation(
            art, backends=backends_option(backends), checkpoint=checkpoint, batch=batch,
            sizes=[parse_size(s) for s in sizes] or None, samples=samples, threads=threads,
            record=record,
        )
    out = Path(report_dir) if report_dir else art.root / "report"
    for path in write_validation_report(report, out):
        click.echo(f"wrote {path}")
    if save_outputs or save_inputs:
        from tdeploy.deploy.evaluate.polygraphy_io import save_polygraphy

        for path in save_polygraphy(record, save_inputs, save_outputs):
            click.echo(f"wrote {path}")
    click.echo(report.summary())
    warn_random_weights(art.sidecar)
    sys.exit(0 if report.passed else 1)
