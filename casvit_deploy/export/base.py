"""The one interface every format exporter implements, and the data it exchanges."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from casvit_deploy.artifacts.manifest import QuantizationRecord, TensorSpec
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.export.describe import input_text, output_text
from casvit_deploy.model.blocks import ModelOutput
from casvit_deploy.settings import Head, Precision, Resolution

Progress = Callable[[str], None]


def no_progress(stage: str) -> None:
    """The default progress callback: ignore stage names."""


@dataclass
class ExportJob:
    """What an exporter is asked to build: `model` (eval, not mutated) into `artifact`.

    `options` is the format's options dataclass (artifacts/options.py). `check(path,
    program, head=Head.LOGITS, images=None, precision=None)` is the load check every exporter
    runs on what it wrote: the artifact opened through its runner and judged against `model`
    (with `head` on top) with parity's metrics (export/verify.py). `outputs` are the model's
    outputs in order (logits, or a backbone's four feature maps); with `dynamic_shape` the
    input's height and width are left free.
    """

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
    check: Callable[..., "Any"]
    progress: Progress = no_progress
    outputs: tuple[ModelOutput, ...] = ()
    dynamic_shape: bool = False

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def input_spec(self, dtype: str = "float32") -> TensorSpec:
        """The image input as every format names it: NCHW, free dimensions named."""
        n = "batch" if self.dynamic_batch else self.batch
        h, w = ("height", "width") if self.dynamic_shape else (self.resolution.height, self.resolution.width)
        return TensorSpec("image", (n, 3, h, w), dtype, "NCHW", input_text(self.preprocessing))

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


@dataclass
class FormatOutput:
    """What an exporter reports back.

    `program` is the `torch.export` program the artifact was built from (block outputs
    are derived from it); `inputs`/`outputs` are the artifact's tensor specs; `details`
    are format-specific facts for the manifest (including the load check's); `head` is what
    the artifact outputs; `preprocessing` replaces the job's when the artifact does part of
    it itself; `notes` are one-line facts for the export summary; `quantization` describes
    an int8 artifact.
    """

    program: Any
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    details: dict[str, Any] = field(default_factory=dict)
    head: Head = Head.LOGITS
    preprocessing: Preprocessing | None = None
    notes: list[str] = field(default_factory=list)
    quantization: QuantizationRecord | None = None


class Exporter(Protocol):
    def export(self, job: ExportJob) -> FormatOutput:
        """Write the artifact at `job.artifact`, load-check it, and describe it."""
        ...
