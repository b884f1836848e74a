"""The manifest next to every artifact: one typed record of what the artifact is, where its
numbers came from and how it was checked, and its one JSON form.

Schema 4 (schema 3, without evaluation records, and schema 2, whose square sizes were plain
integers, are still read). `options` and
`details` are typed by the artifact's format (its record names the classes); reading needs
the format table, passed in as `formats` (name -> Format) so this contract does not depend
on any format. A missing, mistyped or out-of-range field is a one-line FieldError naming
the field. Files (finding, saving, adding parity records under a lock) are store/manifests.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from casvit_deploy.artifacts.details import Details
from casvit_deploy.artifacts.fields import FieldError, Fields
from casvit_deploy.artifacts.format import Format
from casvit_deploy.artifacts.options import FormatOptions
from casvit_deploy.artifacts.preprocessing import NORMALIZED_BY, RESIZE_MODES, Preprocessing
from casvit_deploy.artifacts.records import (
    CheckpointRecord,
    EvaluationRecord,
    ParityRecord,
    QuantizationRecord,
    Signature,
    TensorSpec,
    read_sha256,
    read_specs,
)
from casvit_deploy.model.variants import VARIANTS
from casvit_deploy.settings import (
    MAX_BATCH,
    RESOLUTION_MAX,
    RESOLUTION_MIN,
    RESOLUTION_STEP,
    Form,
    Head,
    Precision,
    Resolution,
    judged_as,
)

SCHEMA = 4
READABLE_SCHEMAS = (2, 3, 4)  # 2: square sizes only, written as integers; 3: no `evaluations`
MAX_EVALUATIONS = 100  # evaluation records kept, newest last (store/manifests.py trims older ones)
MAX_CLASSES = 100_000
MAX_SEED = 2**63 - 1
MAX_RESIZE_RATIO = 2  # the reference resizes to crop / 0.875; a manifest may not ask for much more


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
    options: FormatOptions  # the format's own options class (its record's `options`)
    block_outputs: dict[str, str]
    tools: dict[str, str | None]
    export_seconds: float
    exported_at: str
    details: Details = field(default_factory=Details)  # the format's own details class
    head: Head = Head.LOGITS  # raw class scores, or a classifier's probabilities and label
    dynamic_shape: bool = False  # height and width free (multiples of 32), `resolution` the one checked
    parity: list[ParityRecord] = field(default_factory=list)
    quantization: QuantizationRecord | None = None  # int8 artifacts only
    evaluations: list[EvaluationRecord] = field(default_factory=list)  # `casvit eval` results, newest last
    schema: int = SCHEMA

    # --- derived facts -------------------------------------------------------------------

    @property
    def fixed_batch(self) -> int | None:
        """The batch every run must have, or None when the artifact takes any batch."""
        return None if self.dynamic_batch else self.batch

    @property
    def judged_as(self) -> Precision:
        """The precision whose default thresholds judge this artifact (settings.judged_as)."""
        return judged_as(self.precision, self.options.lossy)

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

    @property
    def latest_evaluation(self) -> EvaluationRecord | None:
        return self.evaluations[-1] if self.evaluations else None

    def checkpoint_path(self, artifact: Path) -> Path | None:
        """The recorded checkpoint, resolved relative to the manifest's folder."""
        if self.checkpoint is None:
            return None
        return Path(artifact).parent / self.checkpoint.path

    def with_file(self, artifact: Path) -> "Manifest":
        """A copy whose file name is that of `artifact`."""
        return replace(self, file=Path(artifact).name)

    # --- JSON ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return data | {
            "inputs": [s.to_dict() for s in self.inputs], "outputs": [s.to_dict() for s in self.outputs],
            "preprocessing": self.preprocessing.to_dict(), "resolution": self.resolution.to_record(),
            "checkpoint": self.checkpoint.to_dict() if self.checkpoint else None,
            "form": self.form.value, "precision": self.precision.value, "options": self.options.to_record(),
            "details": self.details.to_dict(), "head": self.head.value,
            "parity": [p.to_dict() for p in self.parity],
            "quantization": self.quantization.to_dict() if self.quantization else None,
            "evaluations": [e.to_dict() for e in self.evaluations],
        }

    @classmethod
    def from_dict(cls, data: object, formats: Callable[[str], Format]) -> "Manifest":
        """A validated manifest; FieldError naming the first bad field. `formats` gives the
        record of a format name (UsageError for an unknown one)."""
        f = Fields(data)
        schema = f.int("schema", 0, 10**6) if "schema" in f.data else None
        if schema not in READABLE_SCHEMAS:
            raise FieldError(f"field 'schema' is {schema}, this casvit-deploy reads schema "
                             f"{' and '.join(map(str, READABLE_SCHEMAS))}")
        fmt = formats(f.str("format", max_len=64))
        return cls(
            format=fmt.name, file=f.str("file", max_len=255), size_bytes=f.int("size_bytes", 0, 2**53),
            sha256=read_sha256(f, "sha256"), inputs=read_specs(f, "inputs"), outputs=read_specs(f, "outputs"),
            preprocessing=_preprocessing(f.obj("preprocessing")), variant=f.str("variant", tuple(VARIANTS)),
            num_classes=f.int("num_classes", 0, MAX_CLASSES), distillation=f.bool("distillation"),
            weights=f.str("weights"), checkpoint=CheckpointRecord.read(f.obj("checkpoint", optional=True)),
            seed=f.int("seed", 0, MAX_SEED, optional=True), form=Form(f.str("form", tuple(m.value for m in Form))),
            passes=_strings(f, "passes"), precision=Precision(f.str("precision", tuple(m.value for m in Precision))),
            resolution=_resolution(f, "resolution"),
            batch=f.int("batch", 1, MAX_BATCH), dynamic_batch=f.bool("dynamic_batch"),
            dynamic_shape=f.bool("dynamic_shape") if "dynamic_shape" in f.data else False,
            options=fmt.options.from_record(f.obj("options").data, "options"),
            block_outputs=f.str_map("block_outputs"), tools=f.str_map("tools", optional_values=True),
            export_seconds=f.float("export_seconds", 0, 1e7), exported_at=f.str("exported_at", max_len=64),
            details=fmt.details.from_dict(f.obj("details").data),
            head=Head(f.str("head", tuple(h.value for h in Head), optional=True) or Head.LOGITS),
            parity=[ParityRecord.read(Fields(p, f"parity[{i}].")) for i, p in enumerate(f.list("parity", 1000))],
            quantization=QuantizationRecord.read(f.obj("quantization", optional=True)),
            evaluations=_evaluations(f, schema))._consistent(f)

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


# --- field readers ---------------------------------------------------------------------------

def _strings(f: Fields, key: str, max_len: int = 1000) -> list[str]:
    values = f.list(key, max_len)
    if not all(isinstance(v, str) and len(v) <= 200 for v in values):
        f.fail(key, "a list of strings")
    return values


def _evaluations(f: Fields, schema: int) -> list[EvaluationRecord]:
    """Schema 4 has the list (maybe empty); older schemas had none."""
    if schema < 4 and "evaluations" not in f.data:
        return []
    return [EvaluationRecord.read(Fields(e, f"evaluations[{i}].")) for i, e in
            enumerate(f.list("evaluations", MAX_EVALUATIONS))]


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


