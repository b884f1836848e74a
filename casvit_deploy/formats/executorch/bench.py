"""The `casvit bench` backends that time ExecuTorch programs: XNNPACK-delegated, and the
undelegated lowering on portable kernels (a slow baseline)."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from casvit_deploy.formats.executorch.options import Delegate, ExecuTorchOptions
from casvit_deploy.runtime.base import RunnerOptions
from casvit_deploy.settings import Device, Form, Precision


@dataclass(frozen=True)
class ExecuTorchTarget:
    name: str
    summary: str
    delegate: Delegate
    time_budget_s: float | None = None

    def unavailable(self, device: Device) -> str | None:
        return None if device is Device.CPU else "ExecuTorch runs on the CPU here; use --device cpu"

    def export_options(self, precision: Precision, form: Form) -> ExecuTorchOptions:
        """The upstream graph leaves its qkv split and flatten-mean on portable kernels: it is
        timed as it is (that cost is part of what the deploy form removes)."""
        options = ExecuTorchOptions(delegate=self.delegate)
        return options if form is Form.DEPLOY else replace(options, allow_portable=True)

    def runner_options(self, threads: int | None, device: Device) -> RunnerOptions:
        return RunnerOptions(threads=threads)

    def accepts(self, options) -> bool:
        portable = getattr(options, "delegate", None) is Delegate.PORTABLE
        return portable == (self.delegate is Delegate.PORTABLE)

    def profile(self, artifact: Path, threads: int, runs: int, work_dir: Path):
        """Where the time goes, per op kind (ExecuTorch's event tracer)."""
        from casvit_deploy.formats.executorch.profile import profile

        return profile(artifact, threads, runs, work_dir)

    @contextlib.contextmanager
    def process(self, threads: int) -> Iterator[None]:
        """ExecuTorch's shared threadpool (XNNPACK's) sized to `threads`, restored afterwards."""
        before = _threadpool(threads)
        try:
            yield
        finally:
            if before is not None:
                _threadpool(before)


def _threadpool(threads: int | None) -> int | None:
    """Set ExecuTorch's threadpool size when given; the size before (None without ExecuTorch)."""
    if importlib.util.find_spec("executorch") is None:
        return None
    from casvit_deploy.quiet import native_stderr_silenced

    with native_stderr_silenced():  # its CPU probing writes to stderr when the pool starts
        from executorch.extension.pybindings import portable_lib

        before = portable_lib._threadpool_get_thread_count()
        if threads and threads != before:
            portable_lib._unsafe_reset_threadpool(threads)
    return before


PORTABLE_BUDGET_S = 20.0  # reference kernels take seconds per image: fewer runs, see Schedule.fitted
TARGETS = (
    ExecuTorchTarget("executorch", "ExecuTorch with the XNNPACK delegate", Delegate.XNNPACK),
    ExecuTorchTarget("executorch-portable", "ExecuTorch portable kernels, no delegate (for comparison; "
                     f"~{PORTABLE_BUDGET_S:.0f} s per case)", Delegate.PORTABLE, PORTABLE_BUDGET_S),
)
