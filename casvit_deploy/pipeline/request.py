"""What `casvit export` asks for, as given (None wherever the user gave nothing), and its
check: once, before the model is loaded, into one `ExportSettings` per format.

A format option given for none of the chosen formats, a calibration setting without a
calibrated precision, a bad option value, a calibration folder or labels file that cannot
be read, a format named with `-f` that cannot build what is asked (e.g. int8 for ORT) or is
not installed: the whole request is refused, the same way whether one format or several
were asked for. `--format all` means every format that can build the request and is
installed: one that cannot build it is left out (`Planned.refused`), one not installed is
skipped with the pip extra that brings it (`Planned.skipped`); both are reported as skipped,
and if no format is left, the request is refused.
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

BUDGET_FIELDS = ("data", "max_top1_drop")  # a search's top-1 budget


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
    """One format of a checked request: its settings, or why `--format all` leaves it out
    (`refused`: it cannot build the request; `skipped`: its backend is not installed)."""

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


def _route_budget(request: ExportRequest, formats: list[Format]) -> ExportRequest:
    """--data and --max-top1-drop are calibration settings under a calibrated precision (the
    budget of --auto-keep-float), and format options otherwise, for a format that has them
    (CoreML's --fp16-safe and --palettize auto)."""
    given = {name: request.int8.get(name) for name in BUDGET_FIELDS}
    calibrated = request.precision is not None and request.precision.calibrated
    owned = any(set(BUDGET_FIELDS) <= set(f.options.field_names()) for f in formats)
    if calibrated or not owned or all(value is None for value in given.values()):
        return request
    int8 = {name: value for name, value in request.int8.items() if name not in BUDGET_FIELDS}
    return replace(request, int8=int8, options=request.options | given)


def _int8_options(precision: Precision | None, given: dict) -> Int8Options | None:
    """The calibration settings of a calibrated precision; UsageError when one is given with another."""
    given = {k: v for k, v in given.items() if v is not None}
    if precision is None or not precision.calibrated:
        if given:
            flag = _flag(next(iter(given)))
            also = ", or to CoreML's --fp16-safe and --palettize auto" if flag[2:].replace("-", "_") in BUDGET_FIELDS else ""
            raise UsageError(f"{flag} applies to --precision int8 or w8a8 only{also}")
        return None
    if "keep_float" in given:
        given["keep_float"] = tuple(given["keep_float"])
    return Int8Options(**given)


def _planned(fmt: Format, request: ExportRequest, int8: Int8Options | None, named: bool) -> Planned:
    """`fmt`'s settings, checked; a refusal raises when `fmt` was named, else it is recorded."""
    options = fmt.options.from_flags(request.options | {"int8": int8})  # a bad value refuses the whole request
    settings = ExportSettings(request.precision or fmt.default_precision, request.batch, request.dynamic_batch,
                              request.dynamic_shape, options)
    try:
        check_format(fmt, settings)
    except CasvitError as err:
        if named:
            raise
        return Planned(fmt, None, err)
    return Planned(fmt, settings)


def _check_labelled_data(request: ExportRequest) -> None:
    """A top-1 budget's labelled images (--data) are there: read in full once the model's classes are known."""
    data = request.int8.get("data") or request.options.get("data")
    if data is not None and not Path(data).exists():
        raise UsageError(f"--data {data}: no such folder or file (labelled images: a folder of class folders or a "
                         "list file of `path label` lines)")


def _check_calibration_images(int8: Int8Options | None) -> None:
    """The calibration images that will be read: present, regular files, headers readable."""
    if int8 is not None and int8.calibration is not None:
        from casvit_deploy.data.images import check_folder

        check_folder(int8.calibration, "--calibration", int8.calibration_samples)


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
    request = _route_budget(request, formats)
    _check_owned(formats, request.options)
    int8 = _int8_options(request.precision, request.int8)
    named = not asks_all(request.formats)
    planned = [_planned(fmt, request, int8, named) for fmt in formats]
    if all(item.refused for item in planned):
        raise UsageError("no format can build this: " + "; ".join(str(item.refused) for item in planned))
    _check_calibration_images(int8)
    _check_labelled_data(request)
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
