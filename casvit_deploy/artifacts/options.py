"""Export options, one frozen dataclass per format, recorded in the manifest as plain data."""

from __future__ import annotations

import dataclasses
import typing
from enum import Enum
from pathlib import Path

from casvit_deploy.errors import UsageError
from casvit_deploy.settings import CalibrationMethod, Delegate

DEFAULT_DEPLOYMENT_TARGET = "iOS16"
PALETTE_BITS = (8, 6, 4)
DEFAULT_MIN_COSINE = 0.999
ONNX_OPSETS = (17, 18, 19, 20)
DEFAULT_OPSET = 20
IMAGENET_LABELS = "imagenet"  # --labels value: the ImageNet-1k class names shipped with the package


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
    """ONNX (and ORT format): the default-domain opset; the IR version follows it."""

    opset: int = DEFAULT_OPSET
    int8: Int8Options | None = None     # set for --precision int8

    def __post_init__(self):
        if self.opset not in ONNX_OPSETS:
            raise UsageError(f"--opset {self.opset}: choose one of {', '.join(map(str, ONNX_OPSETS))}")


@dataclasses.dataclass(frozen=True)
class CoreMLOptions:
    image_input: bool = False           # RGB pixel-buffer input, ImageNet normalization folded in
    labels: Path | None = None          # class labels file, or "imagenet": the package becomes a classifier
    deployment_target: str = DEFAULT_DEPLOYMENT_TARGET
    fp16_output: bool = False           # fp16 programs: keep the output float16 (default: cast to float32)
    author: str | None = None           # model metadata Xcode shows (None: casvit-deploy's defaults)
    license: str | None = None
    version: str | None = None
    description: str | None = None
    palettize: int | None = None        # k-means palettized weights of this many bits (PALETTE_BITS)
    fp16_safe: bool = False             # keep the blocks the fp16 pre-check flags in fp32
    int8: Int8Options | None = None     # --precision int8/w8a8: the calibration set (w8a8 ranges, pre-check)

    def __post_init__(self):
        if self.palettize is not None and self.palettize not in PALETTE_BITS:
            raise UsageError(f"--palettize {self.palettize!r}: choose {', '.join(map(str, PALETTE_BITS))} bits")

    @property
    def classifier(self) -> bool:
        return self.labels is not None


@dataclasses.dataclass(frozen=True)
class ExecuTorchOptions:
    delegate: Delegate = Delegate.XNNPACK
    allow_portable: bool = False        # accept ops left on portable kernels
    int8: Int8Options | None = None     # set for --precision int8


def from_flags(kind: type, flags: dict):
    """An options object of `kind` from command-line flags (those it has no field for are
    ignored: they belong to other formats; a flag left at None keeps the field's default)."""
    names = {f.name for f in dataclasses.fields(kind)}
    return kind(**{name: value for name, value in flags.items() if name in names and value is not None})


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
    values = {name: _value(hints[name], data[name], f"{where}.{name}") for name in data}
    try:
        return kind(**values)
    except UsageError as err:  # a value the options refuse (e.g. an opset out of range)
        raise UsageError(f"field {where!r} is invalid: {err}") from None


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
