"""``deploy doctor``: which backends this machine can run, why not the others, and versions."""

from __future__ import annotations

import json

import click


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json: bool) -> None:
    """Which backends run here (torch, ONNX Runtime, TensorRT, Triton) and exactly why not; versions."""
    from tdeploy.deploy.doctor import diagnose

    report = diagnose()
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, default=str))
        return
    width = max(len(b.name) for b in report.backends)
    click.echo("backends:")
    for b in report.backends:
        mark = click.style("yes", fg="green") if b.available else click.style("no ", fg="red")
        text = b.detail if b.available else b.reason
        click.echo(f"  {b.name:<{width}}  {mark}  {text}")
    click.echo("versions:")
    vwidth = max(len(k) for k in report.versions)
    for name, version in report.versions.items():
        click.echo(f"  {name:<{vwidth}}  {version or '-'}")
