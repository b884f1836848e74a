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
from casvit_deploy.commands.help import Command, Group

INTERRUPTED = "interrupted"  # the line a Ctrl-C leaves on stderr, with exit code 130


class OneLineErrors(Group):
    """Usage errors Typer finds itself (a bad choice, not a number, an unknown option) are
    printed as one line, `error: ...`, with exit code 2, like the library's own; a Ctrl-C
    during a command leaves one line, `interrupted`, and exit code 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # Typer turns it into exit code 130, silently
            typer.echo(INTERRUPTED, err=True)
            raise

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.TyperException as err:
            if type(err).__name__ == "NoArgsIsHelpError" or not hasattr(err, "format_message"):
                err.show()
                sys.exit(getattr(err, "exit_code", 2))
            ctx = getattr(err, "ctx", None)
            where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            typer.echo(f"error: {err.format_message()}{where}", err=True)
            sys.exit(getattr(err, "exit_code", 2))
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
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


app.command("info", cls=Command)(info_cmd.info)


def _register_optional(name: str) -> None:
    """Commands added by later modules register themselves if their module exists."""
    import importlib

    try:
        module = importlib.import_module(f"casvit_deploy.commands.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"casvit_deploy.commands.{name}":
            raise
        return
    app.command(name, cls=Command)(getattr(module, name))


for _name in ("export", "parity", "bench", "eval"):
    _register_optional(_name)


def run() -> None:
    """Console-script entry point (commands turn domain errors into exit codes themselves)."""
    try:
        app()
    except KeyboardInterrupt:  # before a command runs (imports, parsing)
        typer.echo(INTERRUPTED, err=True)
        sys.exit(130)
