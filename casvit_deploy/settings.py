"""The settings vocabulary shared by every layer: `str` Enums, so a bad choice is refused
by name (Typer rejects it with exit 2 before any work; the library with a UsageError)."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from casvit_deploy.errors import UsageError

E = TypeVar("E", bound=Enum)


class Precision(str, Enum):
    """Numeric precision of an artifact or a benchmark case."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"  # post-training static quantization: int8 weights and activations


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


class CoreMLEngine(str, Enum):
    """What executes a Core ML package: Apple's runtime (macOS), this package's MIL
    reference interpreter, both, or the best one available here (auto)."""

    AUTO = "auto"
    COREML = "coreml"
    MIL_REFERENCE = "mil-reference"
    BOTH = "both"


class Delegate(str, Enum):
    """ExecuTorch lowering: XNNPACK, the Core ML delegate, or none (portable kernels)."""

    XNNPACK = "xnnpack"
    COREML = "coreml"
    PORTABLE = "portable"


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
