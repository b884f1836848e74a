"""The one interface every format exporter implements, and the data it exchanges."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from casvit_deploy.artifacts.manifest import QuantizationRecord, TensorSpec
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.settings import Head, Precision

Progress = Callable[[str], None]


def no_progress(stage: str) -> None:
    """The default progress callback: ignore stage names."""


@dataclass
class ExportJob:
    """What an exporter is asked to build: `model` (eval, not mutated) into `artifact`.

    `options` is the format's options dataclass (artifacts/options.py). `check(path,
    program, head=Head.LOGITS, images=None, precision=None)` is the load check every exporter
    runs on what it wrote: the artifact opened through its runner and judged against `model`
    (with `head` on top) with
    parity's metrics (export/verify.py).
    """

    model: nn.Module
    artifact: Path
    resolution: int
    batch: int
    dynamic_batch: bool
    precision: Precision
    num_classes: int
    metadata: dict[str, str]
    options: Any
    preprocessing: Preprocessing
    check: Callable[..., "Any"]
    progress: Progress = no_progress


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
