"""Export options, one frozen dataclass per format, recorded in the manifest as plain data."""

from __future__ import annotations

import dataclasses
import typing
from enum import Enum
from pathlib import Path

from casvit_deploy.errors import UsageError
from casvit_deploy.settings import CalibrationMethod, Delegate

DEFAULT_DEPLOYMENT_TARGET = "iOS16"
DEFAULT_MIN_COSINE = 0.999


@dataclasses.dataclass(frozen=True)
class Int8Options:
    """Post-training static int8 quantization (formats that offer `--precision int8`)."""

    calibration: Path | None = None                      # image folder; None: bundled photographs + noise
    calibration_samples: int | None = None               # None: the whole folder, or the default set's 32
    calibration_method: CalibrationMethod | None = None  # None: the backend's default
    keep_float: tuple[str, ...] = ()                     # blocks or op kinds left in float
    quantize_residual: bool = False                      # also quantize the residual stream between blocks
    auto_keep_float: bool = False                        # add the fewest blocks that reach min_cosine
    min_cosine: float = DEFAULT_MIN_COSINE               # target of auto_keep_float

    def __post_init__(self):
        if not (isinstance(self.min_cosine, (int, float)) and 0 < self.min_cosine <= 1):
            raise UsageError(f"--min-cosine {self.min_cosine!r}: must be above 0 and at most 1")
        if self.calibration_samples is not None and (isinstance(self.calibration_samples, bool) or not isinstance(
                self.calibration_samples, int) or self.calibration_samples < 1):
            raise UsageError(f"--calibration-samples {self.calibration_samples!r}: must be a positive integer")


@dataclasses.dataclass(frozen=True)
class OnnxOptions:
    int8: Int8Options | None = None     # set for --precision int8


@dataclasses.dataclass(frozen=True)
class CoreMLOptions:
    image_input: bool = False           # RGB pixel-buffer input, ImageNet normalization folded in
    labels: Path | None = None          # class labels file: the package becomes a classifier
    deployment_target: str = DEFAULT_DEPLOYMENT_TARGET


@dataclasses.dataclass(frozen=True)
class ExecuTorchOptions:
    delegate: Delegate = Delegate.XNNPACK
    allow_portable: bool = False        # accept ops left on portable kernels
    int8: Int8Options | None = None     # set for --precision int8


def from_flags(kind: type, flags: dict):
    """An options object of `kind` from command-line flags (those it has no field for are
    ignored: they belong to other formats)."""
    names = {f.name for f in dataclasses.fields(kind)}
    return kind(**{name: value for name, value in flags.items() if name in names})


def to_record(options) -> dict:
    """Plain JSON data: enums as their values, paths as strings, tuples as lists, nested
    options as objects."""
    def plain(value):
        if dataclasses.is_dataclass(value):
            return to_record(value)
        if isinstance(value, tuple):
            return [plain(v) for v in value]
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
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
    if value is None and optional:
        return None
    if base is bool and isinstance(value, bool):
        return value
    if base is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if typing.get_origin(base) is tuple and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if dataclasses.is_dataclass(base):
        return from_record(base, value, where)
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
