"""A stand-in exporter for tests of the export machinery (staging, locks, recovery,
publication), where the backend is not the point: it writes bytes, not a model."""

from __future__ import annotations

import re
from collections.abc import Callable
from types import SimpleNamespace

from casvit_deploy.artifacts.records import TensorSpec
from casvit_deploy.export.base import ExportJob, FormatOutput

NO_PROGRAM = SimpleNamespace(graph=SimpleNamespace(nodes=[]))  # a program with no block outputs


class StubExporter:
    """Writes `payload` as the artifact (inside a package folder for folder formats), then
    runs `during(job)` (a fault to inject) and fails when `fail` is set."""

    def __init__(self, payload: bytes = b"artifact", fail: bool = False,
                 during: Callable[[ExportJob], None] | None = None):
        self.payload, self.fail, self.during = payload, fail, during

    def export(self, job: ExportJob) -> FormatOutput:
        if job.artifact.suffix == ".mlpackage":
            job.artifact.mkdir()
            (job.artifact / "weight.bin").write_bytes(self.payload)
        else:
            job.artifact.write_bytes(self.payload)
        if self.during is not None:
            self.during(job)
        if self.fail:
            raise RuntimeError("backend exploded")
        image = TensorSpec("image", (job.batch, 3, job.resolution, job.resolution), "float32")
        return FormatOutput(NO_PROGRAM, [image], [TensorSpec("logits", (job.batch, job.num_classes), "float32")])


PROGRESS_LINE = re.compile(r"^\[\s*\d+\.\ds\] ")  # "[   0.0s] load model": a stage line on a log


def error_lines(stderr: str) -> list[str]:
    """stderr without the progress lines of the stages that ran before a refusal."""
    return [line for line in stderr.strip().splitlines() if not PROGRESS_LINE.match(line)]
