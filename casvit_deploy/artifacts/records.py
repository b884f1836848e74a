"""The records a manifest is made of, each with its one JSON writer (`to_dict`) and reader
(`read`, from a `Fields` view of untrusted JSON: a bad value is a one-line FieldError
naming the field).

Tensor specs and signatures describe an artifact's interface; the checkpoint, calibration
and quantization records say where its numbers came from; parity records say how it was
checked and evaluation records how accurate it was on labelled data, each tied to the bytes
it checked.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum

from casvit_deploy.artifacts.fields import Fields
from casvit_deploy.settings import CalibrationMethod, timestamp

SHA256_LEN = 64


def read_sha256(f: Fields, key: str, optional: bool = False) -> str | None:
    """A sha256 hex digest field (64 lowercase hex digits)."""
    value = f.str(key, optional=optional, max_len=SHA256_LEN)
    if value is not None and (len(value) != SHA256_LEN or any(c not in "0123456789abcdef" for c in value)):
        f.fail(key, "a sha256 (64 lowercase hex digits)")
    return value


@dataclass(frozen=True)
class TensorSpec:
    """An artifact input or output: name, shape (ints, or names of free dimensions), dtype,
    for people what to feed it or what it holds, and a feature map's `stride` (input size /
    its size; None for images and logits)."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str
    layout: str | None = None
    description: str = ""
    stride: int | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "layout": self.layout,
                "description": self.description, "stride": self.stride}

    @classmethod
    def read(cls, s: Fields) -> "TensorSpec":
        shape = s.list("shape", 8)
        if not all((isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31)
                   or (isinstance(d, str) and len(d) <= 64) for d in shape):
            s.fail("shape", "a list of sizes (integers) or dimension names")
        return cls(s.str("name", max_len=256), tuple(shape), s.str("dtype", max_len=64),
                   s.str("layout", optional=True, max_len=16), s.str("description", optional=True) or "",
                   s.int("stride", 1, 1024, optional=True))

    def differences(self, found: "TensorSpec", what: str) -> list[str]:
        """How `found` (read from the artifact) differs from this spec (the manifest's) in
        name, shape or dtype. A named dimension here matches any size there (a free batch)."""
        out = []
        if found.name != self.name:
            out.append(f"{what} is named {found.name!r}, the manifest says {self.name!r}")
        if len(found.shape) != len(self.shape) or not all(map(_same_dim, self.shape, found.shape)):
            out.append(f"{what} {self.name!r} has shape {list(found.shape)}, the manifest says {list(self.shape)}")
        if found.dtype != self.dtype:
            out.append(f"{what} {self.name!r} has dtype {found.dtype}, the manifest says {self.dtype}")
        return out


def _same_dim(want: int | str, have: int | str) -> bool:
    """A recorded size must match; a recorded dimension name matches any size or that name."""
    return have == want or (isinstance(want, str) and isinstance(have, int))


def read_specs(f: Fields, key: str) -> list[TensorSpec]:
    return [TensorSpec.read(Fields(item, f"{key}[{i}].")) for i, item in enumerate(f.list(key, 16))]


@dataclass(frozen=True)
class Signature:
    """An artifact's inputs and outputs, as its manifest records them or as read from the
    artifact itself (`Runner.signature`)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def differences(self, found: "Signature") -> list[str]:
        """Every way `found` (the artifact's own) differs from this one (the manifest's)."""
        out = []
        for what, want, have in (("input", self.inputs, found.inputs), ("output", self.outputs, found.outputs)):
            if len(have) != len(want):
                out.append(f"{len(have)} {what}(s), the manifest says {len(want)}")
            for i, (w, h) in enumerate(zip(want, have)):
                out += w.differences(h, f"{what} {i}")
        return out


@dataclass(frozen=True)
class CheckpointRecord:
    """The checkpoint an artifact came from; `path` is relative to the manifest's folder
    (or absolute)."""

    path: str
    sha256: str
    used_ema: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, f: Fields | None) -> "CheckpointRecord | None":
        return None if f is None else cls(f.str("path"), read_sha256(f, "sha256"), f.bool("used_ema"))


class ParityStatus(str, Enum):
    """The outcome of one parity check: "not run" when it could not run or was skipped,
    "interrupted" when it was stopped."""

    PASS = "pass"
    FAIL = "fail"
    NOT_RUN = "not run"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class ParityRecord:
    """One parity check, tied to the artifact bytes it checked (`sha256`)."""

    status: ParityStatus
    sha256: str | None
    checked_at: str = field(default_factory=timestamp)
    reason: str = ""
    report: dict | None = None

    def __post_init__(self):
        object.__setattr__(self, "status", ParityStatus(self.status))

    def to_dict(self) -> dict:
        return {"status": self.status.value, "sha256": self.sha256, "checked_at": self.checked_at,
                "reason": self.reason, "report": self.report}

    @classmethod
    def read(cls, f: Fields) -> "ParityRecord":
        report = f.obj("report", optional=True)
        status = ParityStatus(f.str("status", tuple(s.value for s in ParityStatus)))
        return cls(status, read_sha256(f, "sha256", optional=True), f.str("checked_at", max_len=64),
                   f.str("reason"), report.data if report else None)


@dataclass(frozen=True)
class CalibrationRecord:
    """The data that chose an int8 artifact's activation ranges, and how."""

    description: str
    sha256: str   # of the preprocessed float32 calibration tensor (data/calibration.py)
    samples: int
    photos: int   # how many samples are photographs (the rest: seeded noise)
    method: str   # a CalibrationMethod value

    @classmethod
    def read(cls, c: Fields) -> "CalibrationRecord":
        return cls(c.str("description"), read_sha256(c, "sha256"), c.int("samples", 1, 10**6),
                   c.int("photos", 0, 10**6), c.str("method", tuple(m.value for m in CalibrationMethod)))


@dataclass(frozen=True)
class KeptFloat:
    """A block or op kind left in float in an int8 artifact, and why."""

    target: str
    reason: str


@dataclass
class QuantizationRecord:
    """How an int8 artifact was quantized and how close it stays to the fp32 model.

    `agreement`: cosine, snr_db, top1, top5 against fp32 eager on the calibration set's
    photographs, measured on the artifact at export. `cpu_speed_ratio`: fp32 / int8
    latency of the same runtime on this machine's CPU, measured at export (None: not
    measured for this format).
    """

    scheme: str
    config: dict
    calibration: CalibrationRecord
    kept_float: list[KeptFloat] = field(default_factory=list)
    agreement: dict = field(default_factory=dict)
    cpu_speed_ratio: dict | None = None

    def to_dict(self) -> dict:
        return {"scheme": self.scheme, "config": self.config, "calibration": dataclasses.asdict(self.calibration),
                "kept_float": [dataclasses.asdict(k) for k in self.kept_float], "agreement": self.agreement,
                "cpu_speed_ratio": self.cpu_speed_ratio}

    @classmethod
    def read(cls, f: Fields | None) -> "QuantizationRecord | None":
        if f is None:
            return None
        kept = [KeptFloat(k.str("target", max_len=200), k.str("reason")) for k in
                (Fields(item, f"{f.prefix}kept_float[{i}].") for i, item in enumerate(f.list("kept_float", 1000)))]
        speed = f.obj("cpu_speed_ratio", optional=True)
        return cls(f.str("scheme"), f.obj("config").data, CalibrationRecord.read(f.obj("calibration")), kept,
                   f.obj("agreement").data, speed.data if speed else None)


@dataclass(frozen=True)
class DatasetRecord:
    """A labelled set, identified without its images: where it was read, how (`kind`: an image
    folder tree or a list file), its file count and the sha256 of its sorted `path<TAB>label`
    list (data/labelled.py), and how many classes it holds."""

    source: str
    kind: str
    files: int
    sha256: str
    classes: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, f: Fields) -> "DatasetRecord":
        return cls(f.str("source"), f.str("kind", ("folder", "list")), f.int("files", 1, 10**9),
                   read_sha256(f, "sha256"), f.int("classes", 1, 10**6))


@dataclass(frozen=True)
class EvaluationRecord:
    """One `casvit eval` of the artifact on a labelled set, tied to the bytes evaluated
    (`sha256`): top-1/top-5 of the artifact (run by `engine`) and of its eager fp32 reference
    on the same images, the top-1 drop in percentage points with its paired 95% interval,
    top-1 agreement with the reference, and the gate (`max_top1_drop`, None: no gate)."""

    sha256: str
    dataset: DatasetRecord
    top1: float
    top5: float
    reference_top1: float
    reference_top5: float
    drop_pp: float
    ci95_pp: tuple[float, float]
    agreement: float
    engine: str
    evaluated_at: str = field(default_factory=timestamp)
    max_top1_drop: float | None = None
    passed: bool | None = None

    def to_dict(self) -> dict:
        return {"sha256": self.sha256, "dataset": self.dataset.to_dict(), "top1": self.top1, "top5": self.top5,
                "reference_top1": self.reference_top1, "reference_top5": self.reference_top5,
                "drop_pp": self.drop_pp, "ci95_pp": list(self.ci95_pp), "agreement": self.agreement,
                "engine": self.engine, "evaluated_at": self.evaluated_at, "max_top1_drop": self.max_top1_drop,
                "passed": self.passed}

    @classmethod
    def read(cls, f: Fields) -> "EvaluationRecord":
        share = [f.float(key, 0, 1) for key in ("top1", "top5", "reference_top1", "reference_top5")]
        passed = f.data.get("passed")
        if passed is not None and not isinstance(passed, bool):
            f.fail("passed", "true, false or null")
        return cls(read_sha256(f, "sha256"), DatasetRecord.read(f.obj("dataset")), *share,
                   f.float("drop_pp", -100, 100), f.floats("ci95_pp", 2, -100, 100), f.float("agreement", 0, 1),
                   f.str("engine", max_len=512), f.str("evaluated_at", max_len=64),
                   f.float("max_top1_drop", 0, 100, optional=True), passed)
