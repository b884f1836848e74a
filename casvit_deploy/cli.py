"""The `casvit` command line: thin wrappers that parse, call the library and render.

Domain errors become one-line messages and exit codes here, and only here. Heavy
packages are imported inside commands, so `casvit --help` is instant.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from casvit_deploy import __version__
from casvit_deploy.commands import info as info_cmd

app = typer.Typer(
    name="casvit",
    help="Ship CAS-ViT models to ONNX, CoreML and ExecuTorch, with proof of parity and speed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"casvit-deploy {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """casvit: CAS-ViT deployment toolkit."""
    from casvit_deploy.quiet import quiet_third_party

    quiet_third_party()


app.command("info")(info_cmd.info)


def _register_optional(name: str) -> None:
    """Commands added by later modules register themselves if their module exists."""
    import importlib

    try:
        module = importlib.import_module(f"casvit_deploy.commands.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"casvit_deploy.commands.{name}":
            raise
        return
    app.command(name)(getattr(module, name))


for _name in ("export", "parity", "bench"):
    _register_optional(_name)


def run() -> None:
    """Console-script entry point (commands turn domain errors into exit codes themselves)."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
