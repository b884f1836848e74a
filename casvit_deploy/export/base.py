"""The one interface every format exporter implements, and the data it exchanges.

An exporter is a class with two methods (`Exporter`): `check(settings)` refuses what it
cannot build before any work (no model is loaded yet), and `export(job)` writes the
artifact, load-checks it and describes it. The export pipeline (pipeline/) makes the job,
stages, writes the manifest and publishes; the exporter only converts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from casvit_deploy.artifacts.details import Details
from casvit_deploy.artifacts.format import Format
from casvit_deploy.artifacts.options import FormatOptions
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.artifacts.records import QuantizationRecord, TensorSpec
from casvit_deploy.export.describe import input_text, output_text
from casvit_deploy.settings import INPUT_NAME, Head, Precision, Resolution

if TYPE_CHECKING:
    from torch import nn

    from casvit_deploy.model.blocks import ModelOutput

Progress = Callable[[str], None]


def no_progress(stage: str) -> None:
    """The default progress callback: ignore stage names."""


@dataclass(frozen=True)
class ExportSettings:
    """What is asked of one format before any model is loaded: `check` judges it."""

    precision: Precision
    batch: int
    dynamic_batch: bool
    dynamic_shape: bool
    options: FormatOptions


@dataclass
class LoadCheck:
    """The check of a freshly written artifact: run through its runner against eager
    (pipeline/verify.py), or not run and why."""

    ran: bool
    runner: str = ""                  # what executed the artifact, or why it did not run
    failures: list[str] = field(default_factory=list)
    max_abs: float | None = None
    max_rel: float | None = None
    blocks_found: int | None = None   # block outputs the runner can read inside the artifact
    blocks_missing: list[str] = field(default_factory=list)
    samples: int = 0
    agreement: dict = field(default_factory=dict)  # cosine, snr_db, top1, top5 of the first output
    sizes: list[str] = field(default_factory=list)  # the input sizes checked

    @classmethod
    def not_run(cls, reason: str) -> "LoadCheck":
        return cls(False, f"not run: {reason}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FormatOutput:
    """What an exporter reports back.

    `program` is the `torch.export` program the artifact was built from (block outputs
    are derived from it); `inputs`/`outputs` are the artifact's tensor specs; `details`
    are the format's facts for the manifest (its own Details class, the load check's
    included); `head` is what the artifact outputs; `preprocessing` replaces the job's when
    the artifact does part of it itself; `notes` are one-line facts for the export summary;
    `quantization` describes an int8 artifact.
    """

    program: Any
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    details: Details = field(default_factory=Details)
    head: Head = Head.LOGITS
    preprocessing: Preprocessing | None = None
    notes: list[str] = field(default_factory=list)
    quantization: QuantizationRecord | None = None


@dataclass(frozen=True)
class SourceArtifact:
    """The checked artifact of a format's `source` (e.g. the ONNX file an ORT file is
    converted from), written in the same staging folder, and what its exporter reported."""

    path: Path
    output: FormatOutput


@dataclass
class ExportJob:
    """What an exporter is asked to build: `model` (eval, not mutated) into `artifact`.

    `options` is the format's options dataclass. `check(path, program, head=Head.LOGITS,
    images=None, precision=None, lossy=False)` is the load check every exporter runs on what
    it wrote: the artifact opened through its runner and judged against `model` (with `head`
    on top) with parity's metrics by the defaults of `precision` (default: the job's; `lossy`:
    by agreement, as int8) (pipeline/verify.py).
    `outputs` are the model's outputs in order (logits, or a backbone's four feature maps);
    with `dynamic_shape` the input's height and width are left free. `format` is the record
    of the format being built; `source` is set for a format converted from another format's
    artifact.
    """

    format: Format
    model: nn.Module
    artifact: Path
    resolution: Resolution
    batch: int
    dynamic_batch: bool
    precision: Precision
    num_classes: int
    metadata: dict[str, str]
    options: Any
    preprocessing: Preprocessing
    check: Callable[..., LoadCheck]
    progress: Progress = no_progress
    outputs: tuple[ModelOutput, ...] = ()
    dynamic_shape: bool = False
    source: SourceArtifact | None = None

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def input_spec(self, dtype: str = "float32") -> TensorSpec:
        """The image input as every format names it: NCHW, free dimensions named."""
        n = "batch" if self.dynamic_batch else self.batch
        h, w = ("height", "width") if self.dynamic_shape else (self.resolution.height, self.resolution.width)
        return TensorSpec(INPUT_NAME, (n, 3, h, w), dtype, "NCHW", input_text(self.preprocessing))

    def output_specs(self, dtypes: dict[str, str] | None = None) -> list[TensorSpec]:
        """Each output's spec (float32 unless `dtypes` says otherwise), with its stride."""
        specs = []
        for out in self.outputs:
            shape = out.shape("batch" if self.dynamic_batch else self.batch, self.resolution)
            if self.dynamic_shape and out.stride:
                shape = shape[:2] + (f"height/{out.stride}", f"width/{out.stride}")
            specs.append(TensorSpec(out.name, shape, (dtypes or {}).get(out.name, "float32"), out.layout,
                                    output_text(out.name, self.num_classes, out.stride), out.stride))
        return specs


class Exporter(Protocol):
    @staticmethod
    def check(settings: ExportSettings) -> None:
        """UsageError for what this format cannot build (called once, before any work)."""
        ...

    def export(self, job: ExportJob) -> FormatOutput:
        """Write the artifact at `job.artifact`, load-check it, and describe it."""
        ...
