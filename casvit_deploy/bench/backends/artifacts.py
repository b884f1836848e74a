"""Artifact backends: one per bench target of a format (formats/<name>/bench.py), each
timing that format's artifacts through `open_runner` (one loader per format). Without a
user-given artifact, the case's model is exported once into the export cache and reused
by later runs.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace

from casvit_deploy.artifacts.format import BenchTarget, Format
from casvit_deploy.artifacts.options import Int8Options
from casvit_deploy.bench.backends.base import Case, Prepared, input_batch, size_mb
from casvit_deploy.errors import CasvitError
from casvit_deploy.settings import Device, Precision
from casvit_deploy.store import manifests
from casvit_deploy.store.runners import open_runner


def _quantization(path) -> tuple[dict | None, bool]:
    """An int8 artifact's recorded agreement with fp32 eager (None for other precisions), and
    whether its export found it slower than fp32 on the CPU, so meant for NPU execution providers."""
    manifest = manifests.find(path)
    record = manifest.quantization if manifest else None
    if record is None:
        return None, False
    return record.agreement, bool((record.cpu_speed_ratio or {}).get("npu_only"))


class ArtifactBackend:
    """A format's bench target as a `casvit bench` backend."""

    def __init__(self, fmt: Format, target: BenchTarget):
        self.format, self.target = fmt, target
        self.name, self.summary = target.name, target.summary
        self.time_budget_s = getattr(target, "time_budget_s", None)

    def unsupported(self, precision: Precision) -> str | None:
        if precision in self.format.precisions:
            return None
        return f"the {self.format.name} exporter supports {' and '.join(p.value for p in self.format.precisions)} only"

    def unavailable(self, device: Device) -> str | None:
        try:
            self.format.require("run")
        except CasvitError as err:
            return str(err)
        return self.target.unavailable(device)

    @property
    def can_profile(self) -> bool:
        return hasattr(self.target, "profile")

    def profile(self, artifact, threads: int, runs: int, work_dir):
        """Where the time goes in `artifact`, per op kind (the target's own profiler)."""
        return self.target.profile(artifact, threads, runs, work_dir)

    def process(self, threads: int):
        """Process-wide settings while this backend's cases run (e.g. a runtime's threadpool)."""
        setup = getattr(self.target, "process", None)
        return setup(threads) if setup else contextlib.nullcontext()

    def _artifact(self, case: Case, progress) -> tuple:
        """(artifact, export seconds or None, passes) for the case: the user's file or the cache's."""
        if case.artifact is not None:
            manifest = manifests.find(case.artifact)
            return case.artifact, None, list(manifest.passes) if manifest else []
        from casvit_deploy.bench.cache import ExportKey, cached_export, weights_key
        from casvit_deploy.rewrite import deploy_form

        options = self.target.export_options(case.precision, case.form)
        if case.precision.calibrated and options.int8 is None:
            options = replace(options, int8=Int8Options())
        passes = tuple(deploy_form(case.loaded.model, case.form, case.disable)[1])
        key = ExportKey(weights_key(case.loaded), case.loaded.variant, case.resolution, case.precision.value,
                        case.batch, self.format.name, case.form.value, passes, options)
        path, seconds = cached_export(case.loaded, key, case.cache_dir,
                                      lambda stage: progress(f"export {self.format.name}: {stage}"))
        return path, seconds, list(passes)

    def prepare(self, case: Case, progress) -> Prepared:
        path, export_s, passes = self._artifact(case, progress)
        start = time.perf_counter()
        runner = open_runner(path, self.target.runner_options(case.threads, case.device))
        load_s = time.perf_counter() - start
        x = input_batch(case.batch, case.resolution)
        agreement, npu_only = _quantization(path)
        return Prepared(lambda: runner.run(x), runner.description, load_s, passes=passes, artifact=path,
                        artifact_mb=size_mb(path), export_s=export_s, threads=case.threads, close=runner.close,
                        agreement=agreement, npu_only=npu_only)
