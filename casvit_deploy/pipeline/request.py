"""What `casvit export` asks for, as given (None wherever the user gave nothing), and its
check: once, before the model is loaded, into one `ExportSettings` per format.

A format option given for none of the chosen formats, a calibration setting without a
calibrated precision, a bad option value: the whole request is refused. A format that
cannot build what is asked (e.g. int8 for ORT) is refused alone when several formats are
asked for, so the others still run. `--format all` means every format whose backend is
installed: the others are skipped, each with the pip extra that brings it (none installed
is an error); a format named explicitly must be installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from casvit_deploy.artifacts.format import Format
from casvit_deploy.artifacts.options import Int8Options
from casvit_deploy.errors import BackendMissingError, CasvitError, UsageError
from casvit_deploy.export.base import ExportSettings
from casvit_deploy.formats import FORMATS, asks_all, parse_formats
from casvit_deploy.pipeline.export import check_batch, check_dynamic_shape, check_format
from casvit_deploy.settings import Form, Precision, Resolution, choice


@dataclass(frozen=True)
class ExportRequest:
    """One `casvit export` run. `options` are format options by field name (opset, labels,
    delegate, ...) and `int8` calibration settings by Int8Options field name: None (or
    absent) means not given, and the format's default applies."""

    formats: tuple[str, ...]
    checkpoint: Path | None = None
    variant: str | None = None
    ema: bool = False
    backbone: bool = False
    resolution: str | int | Resolution | None = None
    batch: int = 1
    dynamic_batch: bool = False
    dynamic_shape: bool = False
    precision: Precision | None = None
    form: Form = Form.DEPLOY
    out: Path | None = None
    force: bool = False
    check: bool = True
    options: dict = field(default_factory=dict)
    int8: dict = field(default_factory=dict)


@dataclass
class Planned:
    """One format of a checked request: its settings, or why it was refused, or (asked for
    through "all") why it is skipped."""

    format: Format
    settings: ExportSettings | None
    refused: CasvitError | None = None
    skipped: str | None = None


@dataclass
class Plan:
    request: ExportRequest
    resolution: Resolution | None  # None: the checkpoint's, known once it is loaded
    formats: list[Planned]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_owned(formats: list[Format], options: dict) -> None:
    """UsageError for a format option given for none of the chosen formats (e.g. --labels with -f onnx)."""
    for name, value in options.items():
        owners = [f for f in FORMATS.values() if name in f.options.field_names()]
        if value is None or not owners or any(f in owners for f in formats):
            continue
        raise UsageError(f"{_flag(name)} applies to {' and '.join(f.name for f in owners)} only, which is not among "
                         f"the formats chosen; add -f {owners[0].name} or drop {_flag(name)}")


def _int8_options(precision: Precision | None, given: dict) -> Int8Options | None:
    """The calibration settings of a calibrated precision; UsageError when one is given with another."""
    given = {k: v for k, v in given.items() if v is not None}
    if precision is None or not precision.calibrated:
        if given:
            raise UsageError(f"{_flag(next(iter(given)))} applies to --precision int8 or w8a8 only")
        return None
    if "keep_float" in given:
        given["keep_float"] = tuple(given["keep_float"])
    return Int8Options(**given)


def _planned(fmt: Format, request: ExportRequest, int8: Int8Options | None, alone: bool) -> Planned:
    options = fmt.options.from_flags(request.options | {"int8": int8})  # a bad value refuses the whole request
    settings = ExportSettings(request.precision or fmt.default_precision, request.batch, request.dynamic_batch,
                              request.dynamic_shape, options)
    try:
        check_format(fmt, settings)
    except CasvitError as err:
        if alone:
            raise
        return Planned(fmt, None, err)
    return Planned(fmt, settings)


def plan(request: ExportRequest) -> Plan:
    """The request checked without a model; UsageError/BackendMissingError for what refuses it."""
    from casvit_deploy.model.loading import check_resolution

    if request.precision is not None:
        request = replace(request, precision=choice(Precision, request.precision, "--precision"))
    formats, missing = _installed(request.formats)
    check_batch(request.batch)
    resolution = None if request.resolution is None else check_resolution(request.resolution)
    for fmt in formats if request.dynamic_shape else ():
        check_dynamic_shape(fmt)
    _check_owned(formats, request.options)
    int8 = _int8_options(request.precision, request.int8)
    planned = [_planned(fmt, request, int8, len(formats) == 1) for fmt in formats]
    planned += [Planned(fmt, None, skipped=reason) for fmt, reason in missing]
    return Plan(request, resolution, sorted(planned, key=lambda p: list(FORMATS).index(p.format.name)))


def _installed(values) -> tuple[list[Format], list[tuple[Format, str]]]:
    """The chosen formats whose backend is installed, and (for "all") those skipped and why;
    a missing backend is named, with its pip extra, before any work."""
    formats, missing = parse_formats(values), []
    for fmt in list(formats):
        try:
            fmt.require("export")
        except BackendMissingError as err:
            if not asks_all(values):
                raise
            formats.remove(fmt)
            missing.append((fmt, f"not installed: {err}"))
    if not formats:
        raise BackendMissingError("no format's backend is installed: pip install 'casvit-deploy[all]' "
                                  f"(first missing: {missing[0][1]})")
    return formats, missing
