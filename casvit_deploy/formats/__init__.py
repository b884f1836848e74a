"""The format table: one folder per artifact format, each with one `Format` record
(artifacts/format.py) naming its own classes; every lookup derives from this table.

A format's folder holds what only that format knows: its options, exporter, runner,
int8 or compression, bench backend, manifest details and helpers. Adding a format is one
folder plus its record in `BUILTIN` below (or `register(record)`, for a format that lives
outside this package); no other file changes. The folders never import one another
(pyproject.toml's import contracts); a format converted from another's artifact names it
as its `source` instead (ORT from ONNX).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from casvit_deploy.artifacts.format import Format
from casvit_deploy.errors import UsageError
from casvit_deploy.formats import coreml, executorch, onnx, ort

ALL = "all"
BUILTIN = (onnx.FORMAT, ort.FORMAT, coreml.FORMAT, executorch.FORMAT)
FORMATS: dict[str, Format] = {f.name: f for f in BUILTIN}


def register(fmt: Format) -> Format:
    """Add `fmt` to the table (after the built-in formats); UsageError if its name or suffix is taken."""
    if fmt.name in FORMATS or fmt.name == ALL or any(f.suffix == fmt.suffix for f in FORMATS.values()):
        raise UsageError(f"format {fmt.name!r} ({fmt.suffix}) clashes with one already registered")
    FORMATS[fmt.name] = fmt
    return fmt


def unregister(name: str) -> None:
    """Remove a format added with `register` (the built-in ones stay)."""
    if name in {f.name for f in BUILTIN}:
        raise UsageError(f"{name} is a built-in format")
    FORMATS.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(FORMATS)


def get_format(name: str) -> Format:
    """The record for `name`; UsageError listing the formats otherwise."""
    found = FORMATS.get(str(name).strip().lower())
    if found is None:
        raise UsageError(f"unknown format {name!r}: choose one of {', '.join(FORMATS)} (or {ALL})")
    return found


def _names(values: Iterable[str]) -> list[str]:
    return [part.strip().lower() for value in values for part in str(value).split(",") if part.strip()]


def asks_for_all(values: Iterable[str]) -> bool:
    """Whether `--format` values say "all"."""
    return ALL in _names(values)


def parse_formats(values: Iterable[str]) -> list[Format]:
    """`--format` values, repeated and/or comma-separated, "all" for every format; in table order."""
    chosen_names = _names(values)
    if not chosen_names:
        raise UsageError(f"--format: give one of {', '.join(FORMATS)} or {ALL}")
    if ALL in chosen_names:
        return list(FORMATS.values())
    chosen = {get_format(n).name for n in chosen_names}
    return [f for f in FORMATS.values() if f.name in chosen]


def format_for_path(artifact: Path) -> Format:
    """The format of an existing artifact, from its suffix; UsageError otherwise."""
    artifact = Path(artifact)
    if not artifact.exists():
        raise UsageError(f"artifact {artifact} does not exist")
    for fmt in FORMATS.values():
        if artifact.suffix.lower() == fmt.suffix:
            return fmt
    known = ", ".join(f.suffix for f in FORMATS.values())
    raise UsageError(f"{artifact}: unknown artifact format {artifact.suffix or '(no suffix)'!r}; expected {known}")


def suffixes() -> tuple[str, ...]:
    return tuple(f.suffix for f in FORMATS.values())
