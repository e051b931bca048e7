"""Helpers shared by tests (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from tdeploy.deploy.cli.main import cli, main


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run `deploy ARGS` in-process through main() (the real error handling); (code, stdout, stderr)."""
    runner = CliRunner()
    result = runner.invoke(_main_as_command, list(map(str, args)), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def run_cli_subprocess(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed console entry point in a fresh process (checks the real exit status)."""
    return subprocess.run([sys.executable, "-m", "tdeploy.deploy.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


import click  # noqa: E402


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                 "help_option_names": []})
@click.pass_context
def _main_as_command(ctx):
    main(ctx.args)


__all__ = ["cli", "run_cli", "run_cli_subprocess"]


def perturb_parameters(model, scale: float):
    """Add seeded noise of ``scale`` to every parameter of ``model`` (in place; returns it), so that a
    comparison at the init's identities (zero biases, unit norms, ~0 tokens) cannot hide a bias, affine
    or norm-order bug."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model


def random_images(folder: Path, count: int, height: int, width: int) -> Path:
    """``folder`` with ``count`` seeded random RGB PNGs of ``height`` x ``width`` (INT8 calibration input)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder
