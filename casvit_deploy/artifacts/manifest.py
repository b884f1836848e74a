"""The manifest next to every artifact: one typed class owns load, validate, save, parity
records and the rebuild of the reference model. Nothing else reads or writes its JSON.

`<artifact>.manifest.json`, schema 3 (schema 2 is still read: its square sizes were plain
integers). A manifest with a missing, mistyped or out-of-range field is refused with a
one-line ManifestError (exit 2) naming the field.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from casvit_deploy import atomic
from casvit_deploy.artifacts.fields import FieldError, Fields
from casvit_deploy.artifacts.files import artifact_sha256
from casvit_deploy.artifacts.formats import FORMATS, get_format
from casvit_deploy.artifacts.options import from_record, to_record
from casvit_deploy.artifacts.preprocessing import NORMALIZED_BY, RESIZE_MODES, Preprocessing
from casvit_deploy.errors import UsageError
from casvit_deploy.locks import folder_lock
from casvit_deploy.model.loading import LoadedModel, load_model
from casvit_deploy.model.variants import VARIANTS
from casvit_deploy.settings import (
    RESOLUTION_MAX, RESOLUTION_MIN, RESOLUTION_STEP, CalibrationMethod, Form, Head, Precision, Resolution,
)

SCHEMA = 3
READABLE_SCHEMAS = (2, 3)  # schema 2: square sizes only, written as integers
SUFFIX = ".manifest.json"
MAX_BYTES = 16 << 20  # a manifest is a few kB; anything this large is not one
MAX_BATCH = 4096
MAX_CLASSES = 100_000
MAX_SEED = 2**63 - 1
PARITY_STATUSES = ("pass", "fail", "not run", "interrupted")
SHA256_LEN = 64
RECORD_LOCK_WAIT_S = 10.0  # how long adding a parity record waits for an export into the folder
MAX_RESIZE_RATIO = 2  # the reference resizes to crop / 0.875; a manifest may not ask for much more


class ManifestError(UsageError):
    """A manifest that is missing, unreadable or invalid."""


class StaleRecord(UsageError):
    """A parity record about bytes that are no longer the artifact's (not recorded)."""


def manifest_path(artifact: Path) -> Path:
    """The manifest that sits next to an artifact: `<artifact name>.manifest.json`."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + SUFFIX)


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


@dataclass(frozen=True)
class ParityRecord:
    """One parity check, tied to the artifact bytes it checked (`sha256`)."""

    status: str  # one of PARITY_STATUSES
    sha256: str | None
    checked_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    reason: str = ""
    report: dict | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CalibrationRecord:
    """The data that chose an int8 artifact's activation ranges, and how."""

    description: str
    sha256: str   # of the preprocessed float32 calibration tensor (data/calibration.py)
    samples: int
    photos: int   # how many samples are photographs (the rest: seeded noise)
    method: str   # a CalibrationMethod value


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
        return {"scheme": self.scheme, "config": self.config, "calibration": dict(self.calibration.__dict__),
                "kept_float": [dict(k.__dict__) for k in self.kept_float], "agreement": self.agreement,
                "cpu_speed_ratio": self.cpu_speed_ratio}


@dataclass
class Manifest:
    format: str
    file: str
    size_bytes: int
    sha256: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    preprocessing: Preprocessing
    variant: str
    num_classes: int  # 0: a dense-prediction backbone (feature maps, no classes)
    distillation: bool
    weights: str  # "random weights, not pretrained" or "checkpoint <path>"
    checkpoint: CheckpointRecord | None
    seed: int | None
    form: Form
    passes: list[str]
    precision: Precision
    resolution: Resolution
    batch: int
    dynamic_batch: bool
    options: object  # the format's options dataclass (artifacts/options.py)
    block_outputs: dict[str, str]
    tools: dict[str, str | None]
    export_seconds: float
    exported_at: str
    details: dict = field(default_factory=dict)  # format-specific facts, for people
    head: Head = Head.LOGITS  # raw class scores, or a classifier's probabilities and label
    dynamic_shape: bool = False  # height and width free (multiples of 32), `resolution` the one checked
    parity: list[ParityRecord] = field(default_factory=list)
    quantization: QuantizationRecord | None = None  # int8 artifacts only
    schema: int = SCHEMA

    # --- derived facts -------------------------------------------------------------------

    @property
    def fixed_batch(self) -> int | None:
        """The batch every run must have, or None when the artifact takes any batch."""
        return None if self.dynamic_batch else self.batch

    @property
    def judged_as(self) -> Precision:
        """The precision whose default thresholds judge this artifact: its own, except that
        palettized weights (lossy, like int8) are judged by agreement, as int8."""
        return Precision.INT8 if getattr(self.options, "palettize", None) else self.precision

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    @property
    def reference_outputs(self) -> list[str]:
        """The names under which parity compares the artifact with its reference."""
        return list(self.head.outputs) if self.head is Head.CLASSIFIER else (self.output_names or ["logits"])

    @property
    def signature(self) -> Signature:
        return Signature(tuple(self.inputs), tuple(self.outputs))

    @property
    def is_backbone(self) -> bool:
        """Exported from a dense-prediction backbone (recorded as num_classes 0)."""
        return self.num_classes == 0

    @property
    def latest_parity(self) -> ParityRecord | None:
        return self.parity[-1] if self.parity else None

    def checkpoint_path(self, artifact: Path) -> Path | None:
        """The recorded checkpoint, resolved relative to the manifest's folder."""
        if self.checkpoint is None:
            return None
        return Path(artifact).parent / self.checkpoint.path

    # --- JSON ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return data | {
            "inputs": [s.to_dict() for s in self.inputs], "outputs": [s.to_dict() for s in self.outputs],
            "preprocessing": self.preprocessing.to_dict(), "resolution": self.resolution.to_record(),
            "checkpoint": dict(self.checkpoint.__dict__) if self.checkpoint else None,
            "form": self.form.value, "precision": self.precision.value, "options": to_record(self.options),
            "head": self.head.value,
            "parity": [p.to_dict() for p in self.parity],
            "quantization": self.quantization.to_dict() if self.quantization else None,
        }

    @classmethod
    def from_dict(cls, data: object) -> "Manifest":
        """A validated manifest; FieldError naming the first bad field."""
        f = Fields(data)
        schema = f.int("schema", 0, 10**6) if "schema" in f.data else None
        if schema not in READABLE_SCHEMAS:
            raise FieldError(f"field 'schema' is {schema}, this casvit-deploy reads schema "
                             f"{' and '.join(map(str, READABLE_SCHEMAS))}")
        fmt = get_format(f.str("format", tuple(FORMATS)))
        return cls(
            format=fmt.name, file=f.str("file", max_len=255), size_bytes=f.int("size_bytes", 0, 2**53),
            sha256=_sha256(f, "sha256"), inputs=_specs(f, "inputs"), outputs=_specs(f, "outputs"),
            preprocessing=_preprocessing(f.obj("preprocessing")), variant=f.str("variant", tuple(VARIANTS)),
            num_classes=f.int("num_classes", 0, MAX_CLASSES), distillation=f.bool("distillation"),
            weights=f.str("weights"), checkpoint=_checkpoint(f.obj("checkpoint", optional=True)),
            seed=f.int("seed", 0, MAX_SEED, optional=True), form=Form(f.str("form", tuple(m.value for m in Form))),
            passes=_strings(f, "passes"), precision=Precision(f.str("precision", tuple(m.value for m in Precision))),
            resolution=_resolution(f, "resolution"),
            batch=f.int("batch", 1, MAX_BATCH), dynamic_batch=f.bool("dynamic_batch"),
            dynamic_shape=f.bool("dynamic_shape") if "dynamic_shape" in f.data else False,
            options=from_record(fmt.options, f.obj("options").data, "options"),
            block_outputs=f.str_map("block_outputs"), tools=f.str_map("tools", optional_values=True),
            export_seconds=f.float("export_seconds", 0, 1e7), exported_at=f.str("exported_at", max_len=64),
            details=f.obj("details").data, head=Head(f.str("head", tuple(h.value for h in Head), optional=True)
                                                     or Head.LOGITS),
            parity=[_parity(Fields(p, f"parity[{i}].")) for i, p in enumerate(f.list("parity", 1000))],
            quantization=_quantization(f.obj("quantization", optional=True)))._consistent(f)

    def _consistent(self, f: Fields) -> "Manifest":
        """Fields that must agree with each other: the preprocessing crops to the resolution
        and (unless it scales to cover a non-square crop) resizes a square crop to at most
        MAX_RESIZE_RATIO times its side (no outsized images are made)."""
        pre, crop = Fields(f.data["preprocessing"], "preprocessing."), self.preprocessing.crop
        if crop != self.resolution:
            pre.fail("crop", f"the resolution, {self.resolution}")
        if self.preprocessing.resize_mode == "cover":
            return self
        if not crop.square:
            pre.fail("resize_mode", "'cover' for a non-square crop")
        if not crop.height <= self.preprocessing.resize <= MAX_RESIZE_RATIO * crop.height:
            pre.fail("resize", f"from the crop to {MAX_RESIZE_RATIO} times it")
        return self

    # --- files ---------------------------------------------------------------------------

    @classmethod
    def find(cls, artifact: Path) -> "Manifest | None":
        """The artifact's manifest, or None when there is none (an invalid one is an error)."""
        path = manifest_path(artifact)
        if not path.exists():
            return None
        try:
            if path.stat().st_size > MAX_BYTES:
                raise ManifestError(f"manifest {path} is {path.stat().st_size} bytes, too large to be one; "
                                    "re-export the artifact")
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
            reason = getattr(err, "strerror", None) or str(err).splitlines()[0][:80]
            raise ManifestError(f"manifest {path} is not readable JSON ({reason}); re-export the artifact") from None
        try:
            return cls.from_dict(data)
        except UsageError as err:
            raise ManifestError(f"manifest {path}: {err}; re-export the artifact") from None

    @classmethod
    def load(cls, artifact: Path) -> "Manifest":
        """The artifact's manifest; ManifestError when it is missing or invalid."""
        manifest = cls.find(artifact)
        if manifest is None:
            raise ManifestError(f"{artifact} has no manifest ({manifest_path(artifact).name}); "
                                "re-export it with casvit export")
        return manifest

    def save(self, artifact: Path) -> None:
        """Write atomically next to `artifact`."""
        atomic.write_json(manifest_path(artifact), self.to_dict())

    @classmethod
    def append_parity(cls, artifact: Path, record: ParityRecord, export_sha256: str | None = None) -> "Manifest":
        """Add `record` to the manifest on disk now (re-read, so nothing else is lost), under
        the folder's lock. StaleRecord, and nothing written, unless the artifact still has the
        bytes the record is about (`record.sha256`) and, with `export_sha256`, the manifest
        still describes the export that was checked."""
        artifact = Path(artifact)
        with folder_lock(artifact.parent, wait_s=RECORD_LOCK_WAIT_S):
            manifest = cls.load(artifact)
            if export_sha256 is not None and manifest.sha256 != export_sha256:
                raise StaleRecord(f"{artifact.name} was exported again while it was checked")
            if record.sha256 is not None and artifact_sha256(artifact) != record.sha256:
                raise StaleRecord(f"{artifact.name} changed while it was checked")
            manifest.parity.append(record)
            manifest.save(artifact)
        return manifest

    # --- the reference model -------------------------------------------------------------

    def reference_model(self, artifact: Path, checkpoint: Path | None = None,
                        loaded: LoadedModel | None = None) -> LoadedModel:
        """The model the artifact must match: `loaded`, `checkpoint`, the recorded checkpoint,
        or the recorded variant and seed for random weights. The checkpoint's sha256 must be
        the recorded one (checked here, and only here)."""
        artifact = Path(artifact)
        if loaded is None:
            loaded = self._load_reference(artifact, checkpoint)
        self._check_same(loaded, artifact)
        return loaded

    def _load_reference(self, artifact: Path, checkpoint: Path | None) -> LoadedModel:
        if self.checkpoint is None:
            if checkpoint is not None:
                raise UsageError(f"{artifact} was exported with random weights, not from a checkpoint; "
                                 "drop --checkpoint")
            return load_model(None, self.variant, seed=self.seed or 0, backbone=self.is_backbone)
        path = Path(checkpoint) if checkpoint is not None else self.checkpoint_path(artifact)
        if not path.is_file():
            raise UsageError(f"{artifact} was exported from checkpoint {path}, which is not there; "
                             "pass it with --checkpoint")
        from casvit_deploy.model.checkpoint import sha256_of

        found = sha256_of(path)
        if found != self.checkpoint.sha256:
            raise UsageError(f"checkpoint {path} (sha256 {found[:12]}...) is not the one {artifact.name} was "
                             f"exported from (sha256 {self.checkpoint.sha256[:12]}...)")
        return load_model(path, self.variant, self.checkpoint.used_ema)

    def _check_same(self, loaded: LoadedModel, artifact: Path) -> None:
        expected = self.checkpoint.sha256 if self.checkpoint else None
        if expected != loaded.checkpoint_sha256:
            what = f"checkpoint sha256 {expected[:12]}..." if expected else "random weights"
            have = f"sha256 {loaded.checkpoint_sha256[:12]}..." if loaded.checkpoint_sha256 else "random weights"
            raise UsageError(f"{artifact} was exported from {what}, but the reference given has {have}; "
                             "pass the checkpoint it was exported from")
        if self.variant != loaded.variant:
            raise UsageError(f"{artifact} is CAS-ViT-{self.variant}, but the reference model is {loaded.variant}")
        if self.is_backbone != loaded.is_backbone:
            kinds = ("a classifier", "a dense-prediction backbone")
            raise UsageError(f"{artifact} was exported from {kinds[self.is_backbone]}, but the reference model is "
                             f"{kinds[loaded.is_backbone]}")
        if expected is None and (self.seed or 0) != loaded.seed:
            raise UsageError(f"{artifact} was exported with random-weights seed {self.seed}, "
                             f"the reference has seed {loaded.seed}")

    def with_file(self, artifact: Path) -> "Manifest":
        """A copy whose file name is that of `artifact`."""
        return replace(self, file=Path(artifact).name)


def checkpoint_record(loaded: LoadedModel, manifest_dir: Path) -> CheckpointRecord | None:
    """How a manifest in `manifest_dir` records the loaded model's checkpoint."""
    info = loaded.checkpoint
    if info is None:
        return None
    path = os.path.relpath(Path(info.path).resolve(), Path(manifest_dir).resolve())
    return CheckpointRecord(path, info.sha256, info.used_ema)


# --- field readers ---------------------------------------------------------------------------

def _sha256(f: Fields, key: str, optional: bool = False) -> str | None:
    value = f.str(key, optional=optional, max_len=SHA256_LEN)
    if value is not None and (len(value) != SHA256_LEN or any(c not in "0123456789abcdef" for c in value)):
        f.fail(key, "a sha256 (64 lowercase hex digits)")
    return value


def _strings(f: Fields, key: str, max_len: int = 1000) -> list[str]:
    values = f.list(key, max_len)
    if not all(isinstance(v, str) and len(v) <= 200 for v in values):
        f.fail(key, "a list of strings")
    return values


def _specs(f: Fields, key: str) -> list[TensorSpec]:
    specs = []
    for i, item in enumerate(f.list(key, 16)):
        s = Fields(item, f"{key}[{i}].")
        shape = s.list("shape", 8)
        if not all((isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31)
                   or (isinstance(d, str) and len(d) <= 64) for d in shape):
            s.fail("shape", "a list of sizes (integers) or dimension names")
        specs.append(TensorSpec(s.str("name", max_len=256), tuple(shape), s.str("dtype", max_len=64),
                                s.str("layout", optional=True, max_len=16),
                                s.str("description", optional=True) or "", s.int("stride", 1, 1024, optional=True)))
    return specs


def _resolution(f: Fields, key: str) -> Resolution:
    """{"height": H, "width": W}, or (schema 2) one integer for a square."""
    if isinstance(f.data.get(key), int):
        return Resolution.parse(f.int(key, RESOLUTION_MIN, RESOLUTION_MAX, step=RESOLUTION_STEP))
    size = f.obj(key)
    sides = [size.int(side, RESOLUTION_MIN, RESOLUTION_MAX, step=RESOLUTION_STEP) for side in ("height", "width")]
    return Resolution(*sides)


def _preprocessing(f: Fields) -> Preprocessing:
    mode = f.str("resize_mode", RESIZE_MODES)
    in_model = f.str("normalized_by", NORMALIZED_BY, optional=True) == "model"
    numbers = f.obj("in_model") if in_model else f
    return Preprocessing(
        resize=f.int("resize", 1, 8192, optional=mode == "cover"), resize_mode=mode, crop=_resolution(f, "crop"),
        interpolation=f.str("interpolation", max_len=32), scale=numbers.float("scale", 1e-6, 1.0),
        mean=numbers.floats("mean", 3, -1e3, 1e3), std=numbers.floats("std", 3, 1e-6, 1e3),
        color=f.str("color", ("RGB", "BGR")), layout=f.str("layout", ("NCHW", "NHWC")), in_model=in_model)


def _checkpoint(f: Fields | None) -> CheckpointRecord | None:
    if f is None:
        return None
    return CheckpointRecord(f.str("path"), _sha256(f, "sha256"), f.bool("used_ema"))


def _quantization(f: Fields | None) -> QuantizationRecord | None:
    if f is None:
        return None
    c = f.obj("calibration")
    calibration = CalibrationRecord(c.str("description"), _sha256(c, "sha256"), c.int("samples", 1, 10**6),
                                    c.int("photos", 0, 10**6), c.str("method", tuple(m.value for m in CalibrationMethod)))
    kept = [KeptFloat(k.str("target", max_len=200), k.str("reason")) for k in
            (Fields(item, f"{f.prefix}kept_float[{i}].") for i, item in enumerate(f.list("kept_float", 1000)))]
    speed = f.obj("cpu_speed_ratio", optional=True)
    return QuantizationRecord(f.str("scheme"), f.obj("config").data, calibration, kept, f.obj("agreement").data,
                              speed.data if speed else None)


def _parity(f: Fields) -> ParityRecord:
    report = f.obj("report", optional=True)
    return ParityRecord(f.str("status", PARITY_STATUSES), _sha256(f, "sha256", optional=True),
                        f.str("checked_at", max_len=64), f.str("reason"), report.data if report else None)
