"""Parsing helpers shared by the commands: sizes, --set settings, comma lists, backends; a status note."""

from __future__ import annotations

import ast
import sys

import click

from tdeploy.deploy.backends import BACKENDS


def parse_size(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.lower().replace("*", "x").split("x")]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size: write HxW (e.g. 224x224) or one number") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) <= 0:
        raise click.BadParameter(f"{text!r} is not a size: write HxW (e.g. 224x224) or one number")
    return parts[0], parts[1]


def parse_settings(settings: tuple[str, ...]) -> dict:
    """``("depths=(2,2,6,2)", "norm_first=True", "name=x")`` -> {"depths": (2, 2, 6, 2), ...}."""
    out = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise click.BadParameter(f"{item!r}: write --set KEY=VALUE, e.g. --set num_classes=10")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def ints(text: str) -> list[int]:
    try:
        return [int(p) for p in csv(text)]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give comma-separated integers, e.g. 1,8") from None


def backends_option(text: str) -> list[str]:
    names = csv(text)
    for n in names:
        if n not in BACKENDS:
            raise click.BadParameter(f"unknown backend {n!r}: choose from {', '.join(BACKENDS)}")
    return names



class status:
    """A one-line 'working...' note on stderr for steps that take a while (no-op when not a TTY)."""

    def __init__(self, text: str):
        self.text = text

    def __enter__(self):
        if sys.stderr.isatty():
            click.echo(f"{self.text} ...", err=True)
        return self

    def __exit__(self, *exc):
        return False


def verbose() -> bool:
    """``deploy --verbose``: show tracebacks and every TensorRT/exporter message."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("verbose"))
