"""Export options, one frozen dataclass per format, recorded in the manifest as plain data."""

from __future__ import annotations

import dataclasses
import typing
from enum import Enum
from pathlib import Path

from casvit_deploy.errors import UsageError
from casvit_deploy.settings import Delegate

DEFAULT_DEPLOYMENT_TARGET = "iOS16"


@dataclasses.dataclass(frozen=True)
class OnnxOptions:
    """ONNX has no format options yet (the batch settings are common to every format)."""


@dataclasses.dataclass(frozen=True)
class CoreMLOptions:
    image_input: bool = False           # RGB pixel-buffer input, ImageNet normalization folded in
    labels: Path | None = None          # class labels file: the package becomes a classifier
    deployment_target: str = DEFAULT_DEPLOYMENT_TARGET


@dataclasses.dataclass(frozen=True)
class ExecuTorchOptions:
    delegate: Delegate = Delegate.XNNPACK
    allow_portable: bool = False        # accept ops left on portable kernels


def from_flags(kind: type, flags: dict):
    """An options object of `kind` from command-line flags (those it has no field for are
    ignored: they belong to other formats)."""
    names = {f.name for f in dataclasses.fields(kind)}
    return kind(**{name: value for name, value in flags.items() if name in names})


def to_record(options) -> dict:
    """Plain JSON data: enums as their values, paths as strings."""
    def plain(value):
        return value.value if isinstance(value, Enum) else str(value) if isinstance(value, Path) else value

    return {f.name: plain(getattr(options, f.name)) for f in dataclasses.fields(options)}


def from_record(kind: type, data: object, where: str):
    """An options object of `kind` from manifest data; UsageError naming a bad field."""
    if not isinstance(data, dict):
        raise UsageError(f"field {where!r} must be an object, got {type(data).__name__}")
    hints = typing.get_type_hints(kind)
    names = {f.name for f in dataclasses.fields(kind)}
    if unknown := sorted(set(data) - names):
        raise UsageError(f"field '{where}.{unknown[0]}' is not an option of {kind.__name__}")
    return kind(**{name: _value(hints[name], data[name], f"{where}.{name}") for name in data})


def _value(hint, value, where: str):
    optional = type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    if value is None and optional:
        return None
    if base is bool and isinstance(value, bool):
        return value
    if base is str and isinstance(value, str):
        return value
    if base is Path and isinstance(value, str):
        return Path(value)
    if isinstance(base, type) and issubclass(base, Enum) and isinstance(value, str):
        try:
            return base(value)
        except ValueError:
            pass
    raise UsageError(f"field {where!r} has an invalid value {value!r:.60}")
