"""Export options: `FormatOptions`, the base of every format's options dataclass
(formats/<name>/options.py), the int8 settings they share, and their one JSON form.

Options are frozen dataclasses whose defaults are the defaults: a value the user did not
give is None on the way in (`from_flags` ignores it), never compared with a default.
In a manifest they are plain data (enums as values, paths as strings, tuples as lists,
nested options as objects); `from_record` reads them back, naming a bad field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import typing
from enum import Enum
from pathlib import Path

from casvit_deploy.errors import UsageError
from casvit_deploy.settings import CalibrationMethod

DEFAULT_MIN_COSINE = 0.999  # --auto-keep-float's target
MAX_TAG_CHARS = 40  # a name tag longer than this keeps its start and a digest of the whole


def name_tag(text: str) -> str:
    """`text` as one part of a file name: letters, digits, ".", "+" and "-" ("-" for anything
    else), at most MAX_TAG_CHARS (a longer one ends in 8 hex digits of its sha256)."""
    tag = re.sub(r"[^A-Za-z0-9.+]+", "-", str(text)).strip("-.") or "x"
    if len(tag) <= MAX_TAG_CHARS:
        return tag
    return f"{tag[:MAX_TAG_CHARS - 9]}-{hashlib.sha256(str(text).encode()).hexdigest()[:8]}"


def check_top1_budget(data: Path | None, budget: float | None) -> None:
    """A search's top-1 budget: labelled images (`data`) and percentage points, both or neither."""
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                               or not 0 <= budget <= 100):
        raise UsageError(f"--max-top1-drop {budget!r}: a number of percentage points from 0 to 100")
    if (data is None) != (budget is None):
        raise UsageError("--data and --max-top1-drop go together: the labelled images and the top-1 budget "
                         "a search stops at")


def budget_tags(data: Path | None, budget: float | None) -> tuple[str, ...]:
    """The name tag of a top-1 budget and its labelled data (e.g. "top1drop0.5-val"), or none."""
    return () if budget is None else (name_tag(f"top1drop{budget:g}-{Path(data).name}"),)


@dataclasses.dataclass(frozen=True)
class Int8Options:
    """Post-training calibration settings (precisions that calibrate: int8, w8a8)."""

    calibration: Path | None = None                      # image folder; None: bundled photographs + noise
    calibration_samples: int | None = None               # None: the whole folder, or the default set's 32
    calibration_method: CalibrationMethod | None = None  # None: the format's default
    keep_float: tuple[str, ...] = ()                     # blocks or op kinds left in float
    quantize_residual: bool = False                      # also quantize the residual stream between blocks
    auto_keep_float: bool = False                        # add the fewest blocks that reach min_cosine
    min_cosine: float = DEFAULT_MIN_COSINE               # target of auto_keep_float
    data: Path | None = None                             # labelled images: auto_keep_float's top-1 budget...
    max_top1_drop: float | None = None                   # ...in percentage points (replaces min_cosine)

    def __post_init__(self):
        if not (isinstance(self.min_cosine, (int, float)) and 0 < self.min_cosine <= 1):
            raise UsageError(f"--min-cosine {self.min_cosine!r}: must be above 0 and at most 1")
        self._check_budget()
        if self.calibration_samples is not None and (isinstance(self.calibration_samples, bool) or not isinstance(
                self.calibration_samples, int) or self.calibration_samples < 1):
            raise UsageError(f"--calibration-samples {self.calibration_samples!r}: must be a positive integer")

    def _check_budget(self) -> None:
        """--data and --max-top1-drop go together, with --auto-keep-float."""
        check_top1_budget(self.data, self.max_top1_drop)
        if self.max_top1_drop is not None and not self.auto_keep_float:
            raise UsageError("--data and --max-top1-drop set the budget of --auto-keep-float; add it (to measure "
                             "an artifact's accuracy, use casvit eval)")

    def name_tags(self) -> tuple[str, ...]:
        """The settings that differ from the defaults, as artifact name tags (e.g. "cal-imgs",
        "n200", "minmax", "keep-head", "residual", "autokeep0.9995", "top1drop0.5-val"): settings that change
        the artifact change its name."""
        tags = []
        if self.calibration is not None:
            tags.append(name_tag(f"cal-{Path(self.calibration).name}"))
        if self.calibration_samples is not None:
            tags.append(f"n{self.calibration_samples}")
        if self.calibration_method is not None:
            tags.append(self.calibration_method.value)
        if self.keep_float:
            tags.append(name_tag("keep-" + "-".join(self.keep_float)))
        if self.quantize_residual:
            tags.append("residual")
        if self.auto_keep_float:  # min_cosine is its target, and nothing else's
            tags.append(name_tag(f"autokeep{self.min_cosine:g}" if self.min_cosine != DEFAULT_MIN_COSINE else "autokeep"))
        return tuple(tags) + budget_tags(self.data, self.max_top1_drop)

    def given(self) -> list[str]:
        """The flags of the settings that differ from the defaults, e.g. ["--keep-float"]."""
        defaults = Int8Options()
        return ["--" + f.name.replace("_", "-") for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(defaults, f.name)]


@dataclasses.dataclass(frozen=True)
class FormatOptions:
    """The base of every format's options. `int8` holds the calibration settings of a
    calibrated precision (int8, w8a8) and is None for the others."""

    int8: Int8Options | None = dataclasses.field(default=None, kw_only=True)
    # The fields that change nothing the artifact computes or takes (e.g. metadata), so its
    # name leaves them out; every other field is named by `name_tags` when not at its default.
    unnamed: typing.ClassVar[tuple[str, ...]] = ()

    @property
    def lossy(self) -> bool:
        """True when these options make the artifact lossy whatever its precision (e.g.
        palettized weights): it is then judged by agreement with fp32, as int8 is."""
        return False

    def target(self) -> dict:
        """The options that decide which runtime releases load the artifact, for `casvit info`
        (e.g. a CoreML deployment target); none by default."""
        return {}

    def name_tags(self) -> tuple[str, ...]:
        """The options that shape the artifact, as tags its file name ends with (e.g. "opset17",
        "image", "imagenet"), so that artifacts made with other options never collide; none at
        their defaults. Formats override this to add their own (calling super() for the int8
        settings'); the fields in `unnamed` are not named."""
        return self.int8.name_tags() if self.int8 is not None else ()

    def carried_to(self, kind: type):
        """These options' values for another options class `kind`, by field name (a converted
        format's source export takes them: ORT's opset is its ONNX graph's); fields `kind`
        does not have are dropped, fields left None take `kind`'s defaults."""
        return kind.from_flags({name: getattr(self, name) for name in self.field_names()})

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_flags(cls, flags: dict):
        """Options from command-line flags: those this class has no field for belong to other
        formats and are ignored; a flag that is None (not given) keeps the field's default."""
        names = set(cls.field_names())
        return cls(**{name: value for name, value in flags.items() if name in names and value is not None})

    def to_record(self) -> dict:
        return to_record(self)

    @classmethod
    def from_record(cls, data: object, where: str = "options"):
        """Options from manifest data; UsageError naming a bad field."""
        return from_record(cls, data, where)


def to_record(options) -> dict:
    """Plain JSON data of an options dataclass."""
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
