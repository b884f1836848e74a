"""The one interface every format exporter implements, and the data it exchanges."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from torch import nn

Progress = Callable[[str], None]


def no_progress(stage: str) -> None:
    """The default progress callback: ignore stage names."""


@dataclass
class ExportJob:
    """What an exporter is asked to build: `model` (eval, not mutated) into `artifact`."""

    model: nn.Module
    artifact: Path
    resolution: int
    batch: int
    dynamic_batch: bool
    precision: str
    num_classes: int
    metadata: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)
    progress: Progress = no_progress


@dataclass
class FormatOutput:
    """What an exporter reports back: the exported graph and format-specific manifest fields.

    `program` is the `torch.export` program the artifact was built from (block_outputs
    are derived from it); `inputs`/`outputs` are the artifact's tensor specs.
    """

    program: Any
    inputs: list[dict]
    outputs: list[dict]
    fields: dict[str, Any] = field(default_factory=dict)


class Exporter(Protocol):
    format: str
    suffix: str
    requires: tuple[tuple[str, str], ...]  # (import name, pip install name)
    precisions: tuple[str, ...]  # the first is the default

    def export(self, job: ExportJob) -> FormatOutput:
        """Write the artifact at `job.artifact`, verify it loads, and describe it."""
        ...
