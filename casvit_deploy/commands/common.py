"""The CLI vocabulary shared by every command: one meaning per flag, one place for each.

Short flags: -c --checkpoint, -v --variant, -r --resolution (224 or HEIGHTxWIDTH such as
512x768), -f --format, -p --precision, -o --out, -b --backend (bench). `--json PATH` writes
JSON to PATH, `--json -` prints it instead of the tables. Repeatable options repeat (`-f onnx -f coreml`) and also take
comma-separated values (`-f onnx,coreml`). Values are checked by the library, not here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from casvit_deploy.settings import Precision

CheckpointOpt = Annotated[Optional[Path], typer.Option(
    "--checkpoint", "-c", help="PyTorch checkpoint (.pth/.pt/.safetensors). Without it: seeded random weights.",
    show_default=False)]
VariantOpt = Annotated[Optional[str], typer.Option(
    "--variant", "-v", help="xs, s, m or t. Inferred from the checkpoint when given; default xs.", show_default=False)]
VariantsOpt = Annotated[Optional[list[str]], typer.Option(
    "--variant", "-v", help="xs, s, m or t (repeatable); default xs.", show_default=False)]
EmaOpt = Annotated[bool, typer.Option("--ema", help="Use the checkpoint's EMA weights.")]
ResolutionOpt = Annotated[Optional[str], typer.Option(
    "--resolution", "-r", help="Input size: one side for a square (224) or HEIGHTxWIDTH (512x768), each a multiple "
    "of 32 from 32 to 2048 (default: the checkpoint's, else 224).", metavar="SIZE", show_default=False)]
BackboneOpt = Annotated[bool, typer.Option(
    "--backbone", help="Without --checkpoint: random weights in the dense-prediction backbone form (four feature "
    "maps, strides 4-32) instead of the classifier. A checkpoint's form is read from the file.")]
PrecisionsOpt = Annotated[list[Precision], typer.Option(
    "--precision", "-p", help="Numeric precision (repeatable).", case_sensitive=False)]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", help="CPU threads for torch, ONNX Runtime and XNNPACK (default: usable cores).", show_default=False)]
JsonOpt = Annotated[Optional[Path], typer.Option(
    "--json", help="Write the JSON report to this file ('-': print it instead of the tables).", metavar="PATH",
    show_default=False)]


def report_option(flag: str, text: str):
    """A report-file option (`-` prints it)."""
    return Annotated[Optional[Path], typer.Option(flag, help=text, metavar="PATH", show_default=False)]


def split_values(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated option values, flattened."""
    return [part.strip() for value in values or [] for part in str(value).split(",") if part.strip()]


def console() -> Console:
    return Console(highlight=False)


def to_stdout(path: Path | None) -> bool:
    return path is not None and str(path) == "-"


def emit(path: Path | None, render: Callable[[], str]) -> None:
    """Print `render()` for `-`, else write it atomically to `path` (nothing for None)."""
    from casvit_deploy import atomic

    if path is None:
        return
    text = render()
    if to_stdout(path):
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        atomic.write_text(path, text)


def json_text(payload: dict) -> str:
    return json.dumps(payload, indent=2, default=str) + "\n"


def print_notes(notes: list[str]) -> None:
    """Things the user should know that are not errors (e.g. checkpoint keys ignored), on stderr."""
    for note in notes:
        typer.echo(f"note: {note}", err=True)


def check_report_paths(**paths: Path | None) -> None:
    """Refuse unwritable report paths before any work (option name from the keyword)."""
    from casvit_deploy.atomic import check_writable

    for name, path in paths.items():
        check_writable(path, f"--{name.replace('_', '-')}")


def guarded(fn):
    """Run the command with third-party noise silenced (restored after), turning domain
    errors into a one-line message and their exit code."""
    from casvit_deploy.errors import CasvitError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from casvit_deploy.quiet import quiet_third_party

        try:
            with quiet_third_party():
                return fn(*args, **kwargs)
        except CasvitError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(err.exit_code) from None

    return wrapper
