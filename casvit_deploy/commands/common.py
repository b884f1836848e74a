"""Options and helpers shared by several commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

CheckpointOpt = Annotated[Optional[Path], typer.Option(
    "--checkpoint", "-c", help="PyTorch checkpoint (.pth/.pt/.safetensors). Without it: seeded random weights.",
    show_default=False)]
VariantOpt = Annotated[Optional[str], typer.Option(
    "--variant", "-v", help="xs, s, m or t. Inferred from the checkpoint when given; default xs.", show_default=False)]
EmaOpt = Annotated[bool, typer.Option("--ema", help="Use the checkpoint's EMA weights.")]
ResolutionOpt = Annotated[Optional[int], typer.Option(
    "--resolution", "-r", help="Square input size, a multiple of 32 (default: the checkpoint's, else 224).",
    show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]


def console() -> Console:
    return Console(highlight=False)


def print_json(payload: dict) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


def guarded(fn):
    """Run `fn`, turning domain errors into a one-line message and their exit code."""
    import functools

    from casvit_deploy.errors import CasvitError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CasvitError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(err.exit_code) from None

    return wrapper
