"""The ``deploy`` command line: the group, its commands, and the error policy.

Every failure a user can fix prints one line, ``error: ...``, and exits with status 2; a validation
that runs but finds outputs out of tolerance exits with status 1.
"""

from __future__ import annotations

import sys
import traceback

import click

from tdeploy.deploy.cli.bench import bench
from tdeploy.deploy.cli.build_engine import build_engine
from tdeploy.deploy.cli.doctor import doctor
from tdeploy.deploy.cli.export import export
from tdeploy.deploy.cli.generate import generate
from tdeploy.deploy.cli.inspect import inspect_cmd
from tdeploy.deploy.cli.list import list_cmd
from tdeploy.deploy.cli.run import run
from tdeploy.deploy.cli.validate import validate
from tdeploy.errors import TdeployError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tdeploy")
@click.option("-v", "--verbose", is_flag=True, help="On errors, the traceback and the cause; every TensorRT message.")
def cli(verbose: bool) -> None:
    """tdeploy: attention models from PyTorch to ONNX and TensorRT engines."""


cli.add_command(list_cmd)
cli.add_command(export)
cli.add_command(validate)
cli.add_command(bench)
cli.add_command(inspect_cmd)
cli.add_command(build_engine)
cli.add_command(run)
cli.add_command(generate)
cli.add_command(doctor)


# What an interrupt leaves on disk, by command (every file tdeploy writes is written whole, then renamed).
INTERRUPTED = {
    "export": "the destination holds the previous export, or no model.json if the new one was being moved in "
              "(then it is not an artifact): run the export again",
    "build-engine": "engines finished before it were kept (each with its sidecar), the one being built was not "
                    "written",
}
INTERRUPTED_DEFAULT = "files finished before it were kept, each whole; none is half written"


def interrupted_message(args: list[str]) -> str:
    command = next((a for a in args if a in cli.commands), None)
    return f"interrupted: {INTERRUPTED.get(command, INTERRUPTED_DEFAULT)}"


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    show_cause = "-v" in args or "--verbose" in args
    try:
        cli.main(args=args, prog_name="deploy", standalone_mode=False)
    except TdeployError as exc:
        if show_cause:
            traceback.print_exception(exc, file=sys.stderr)
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo(interrupted_message(args), err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
