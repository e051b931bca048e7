"""``deploy list``: model variants, their family and the family aliases."""

from __future__ import annotations

import click


@click.command("list")
@click.argument("family", required=False)
def list_cmd(family: str | None) -> None:
    """List model variants (optionally of one FAMILY) and the family aliases."""
    from tdeploy.models import get_entry, list_families, list_models

    defaults = list_families()
    if family and family not in defaults:
        get_entry(family)  # raises with the close names
    for name in list_models(family):
        entry = get_entry(name)
        alias = [f for f, d in defaults.items() if d == name]
        mark = f"  (= {alias[0]})" if alias else ""
        click.echo(f"{name:<26} {entry.family:<12} {entry.description}{mark}")
