"""A stand-in exporter for tests of the export machinery (staging, locks, recovery,
publication), where the backend is not the point: it writes bytes, not a model."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

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


@contextlib.contextmanager
def system_temp_forbidden(folder: Path):
    """Within the block, creating anything in the system temp folder fails: `tempfile`'s folder
    is a path under a regular file in `folder` (root cannot create there either), so an export
    passes only if every temporary file goes where it belongs. torch's compiler cache, which
    torch would also place under the temp folder, is pinned to `folder` for the block."""
    blocker = Path(folder) / "system-temp-is-a-file"
    blocker.touch()
    cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or str(Path(folder) / "torchinductor")
    with mock.patch.object(tempfile, "tempdir", str(blocker / "tmp")), \
            mock.patch.dict(os.environ, {"TORCHINDUCTOR_CACHE_DIR": cache}):
        yield
