"""The settings vocabulary shared by every layer: `str` Enums, so a bad choice is refused
by name (Typer rejects it with exit 2 before any work; the library with a UsageError)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from casvit_deploy.errors import UsageError

E = TypeVar("E", bound=Enum)

INPUT_NAME = "image"  # every artifact's one input
MAX_BATCH = 4096      # the largest batch an artifact, a manifest or a benchmark takes
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the normalization every CAS-ViT checkpoint was trained with
IMAGENET_STD = (0.229, 0.224, 0.225)
TIMESTAMP = "%Y-%m-%dT%H:%M:%S%z"  # local time with its UTC offset, in manifests and reports


def timestamp() -> str:
    """Now, in the TIMESTAMP format."""
    return time.strftime(TIMESTAMP)


class Precision(str, Enum):
    """Numeric precision of an artifact or a benchmark case."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"  # ONNX/ExecuTorch: int8 weights and activations, calibrated; CoreML: int8 weights
    W8A8 = "w8a8"  # CoreML: int8 weights and activations, calibrated

    @property
    def calibrated(self) -> bool:
        """A lossy precision (int8, w8a8): it takes calibration settings, and its artifacts
        are judged by agreement with fp32 rather than by a tolerance."""
        return self in (Precision.INT8, Precision.W8A8)


def judged_as(precision: Precision, lossy: bool = False) -> Precision:
    """The precision whose default thresholds judge an artifact: int8 (agreement with fp32)
    for every lossy one (a calibrated precision, or `lossy` options such as palettized
    weights), else its own."""
    precision = Precision(precision)
    return Precision.INT8 if precision.calibrated or lossy else precision


class CalibrationMethod(str, Enum):
    """How int8 activation ranges are chosen from the calibration set: min-max, a
    histogram search for the range of least quantization error (PyTorch's
    HistogramObserver), a percentile of the values, or the range of least relative entropy."""

    MINMAX = "minmax"
    HISTOGRAM = "histogram"
    PERCENTILE = "percentile"
    ENTROPY = "entropy"


class Form(str, Enum):
    """Which graph is exported or run: the deploy-form rewrite or the upstream model."""

    DEPLOY = "deploy"
    UPSTREAM = "upstream"


class Device(str, Enum):
    CPU = "cpu"
    CUDA = "cuda"


class Head(str, Enum):
    """What an artifact outputs: the raw class scores ("logits"), or a classifier's softmax
    probabilities and top label."""

    LOGITS = "logits"
    CLASSIFIER = "classifier"

    @property
    def outputs(self) -> tuple[str, ...]:
        """The output names runners report and parity compares for this head."""
        return ("logits",) if self is Head.LOGITS else ("probabilities", "label")


class InputKind(str, Enum):
    """Parity input sets: seeded random images, photographs, or both."""

    RANDOM = "random"
    IMAGES = "images"
    BOTH = "both"


def choice(kind: type[E], value: E | str, option: str) -> E:
    """`value` as a member of `kind`; UsageError naming `option` and the choices otherwise."""
    if isinstance(value, kind):
        return value
    try:
        return kind(str(value).lower())
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise UsageError(f"{option} {value!r}: choose one of {choices}") from None


RESOLUTION_MIN, RESOLUTION_MAX, RESOLUTION_STEP = 32, 2048, 32
_SIZE = re.compile(r"\s*(\d+)\s*(?:[xX\u00d7]\s*(\d+)\s*)?")


def _valid_side(side: object) -> bool:
    return (isinstance(side, int) and not isinstance(side, bool) and side % RESOLUTION_STEP == 0
            and RESOLUTION_MIN <= side <= RESOLUTION_MAX)


@dataclass(frozen=True)
class Resolution:
    """An input size, height x width in pixels, each a multiple of 32 from 32 to 2048.

    Written "224" when square and "512x768" (height x width) otherwise, which is also what
    `parse` reads; recorded in JSON as {"height": ..., "width": ...}.
    """

    height: int
    width: int

    def __post_init__(self):
        if not (_valid_side(self.height) and _valid_side(self.width)):
            raise UsageError(_invalid("resolution", f"{self.height}x{self.width}"))

    @classmethod
    def parse(cls, value: "Resolution | int | str", source: str = "--resolution") -> "Resolution":
        """`value` (a Resolution, an int side, "224" or "512x768") as a Resolution;
        UsageError naming `source` otherwise."""
        if isinstance(value, Resolution):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            sides = (value, value)
        elif isinstance(value, str) and (found := _SIZE.fullmatch(value)):
            sides = (int(found.group(1)), int(found.group(2) or found.group(1)))
        else:
            sides = ()
        if not sides or not all(map(_valid_side, sides)):
            raise UsageError(_invalid(source, value.strip() if isinstance(value, str) else repr(value)))
        return cls(*sides)

    @property
    def square(self) -> bool:
        return self.height == self.width

    def __str__(self) -> str:
        return str(self.height) if self.square else f"{self.height}x{self.width}"

    def shape(self, batch: int | str, channels: int = 3) -> tuple:
        """The NCHW shape of a batch of this size."""
        return (batch, channels, self.height, self.width)

    def to_record(self) -> dict:
        return {"height": self.height, "width": self.width}

    @classmethod
    def from_record(cls, value: object) -> "Resolution":
        """From JSON: {"height": H, "width": W}, or (older records) one integer side."""
        if isinstance(value, dict):
            return cls(value.get("height"), value.get("width"))
        return cls.parse(value, "resolution")


def _invalid(source: str, shown: str) -> str:
    return (f"{source} {shown} is not a multiple of {RESOLUTION_STEP} between {RESOLUTION_MIN} and "
            f"{RESOLUTION_MAX}: give one side for a square (224) or HEIGHTxWIDTH (512x768)")
