"""Artifact backends: ONNX Runtime, ExecuTorch (XNNPACK, or portable kernels) and CoreML.

Each opens an exported artifact through `open_runner` (one loader per format). Without a
user-given artifact, the case's model is exported once into the export cache and reused
by later runs.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

from casvit_deploy.artifacts.formats import FORMATS, Format
from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.artifacts.options import CoreMLOptions, ExecuTorchOptions, Int8Options, OnnxOptions
from casvit_deploy.bench.backends.base import Case, Prepared, input_batch, size_mb
from casvit_deploy.bench.cache import ExportKey, cached_export, weights_key
from casvit_deploy.errors import CasvitError
from casvit_deploy.export.coreml_compress import W8A8
from casvit_deploy.rewrite import deploy_form
from casvit_deploy.runtime.base import RunnerOptions
from casvit_deploy.runtime.registry import open_runner
from casvit_deploy.settings import CoreMLEngine, Delegate, Device, Form, Precision


def _missing(fmt: Format) -> str | None:
    try:
        fmt.require("run")
    except CasvitError as err:
        return str(err)
    return None


def _artifact(case: Case, fmt: Format, options, progress) -> tuple:
    """(artifact, export seconds or None, passes) for the case: the user's file or the cache's."""
    if case.artifact is not None:
        manifest = Manifest.find(case.artifact)
        return case.artifact, None, list(manifest.passes) if manifest else []
    if case.precision is Precision.INT8 and options.int8 is None:
        options = replace(options, int8=Int8Options())
    passes = tuple(deploy_form(case.loaded.model, case.form, case.disable)[1])
    key = ExportKey(weights_key(case.loaded), case.loaded.variant, case.resolution, case.precision.value,
                    case.batch, fmt.name, case.form.value, passes, options)
    path, seconds = cached_export(case.loaded, key, case.cache_dir, lambda stage: progress(f"export {fmt.name}: {stage}"))
    return path, seconds, list(passes)


def _timed_runner(case: Case, fmt: Format, options, progress, runner_options: RunnerOptions) -> Prepared:
    path, export_s, passes = _artifact(case, fmt, options, progress)
    start = time.perf_counter()
    runner = open_runner(path, runner_options)
    load_s = time.perf_counter() - start
    x = input_batch(case.batch, case.resolution)
    return Prepared(lambda: runner.run(x), runner.description, load_s, passes=passes, artifact=path,
                    artifact_mb=size_mb(path), export_s=export_s, threads=case.threads, close=runner.close,
                    agreement=_agreement(path))


def _agreement(path) -> dict | None:
    """An int8 artifact's recorded agreement with fp32 eager (None for other precisions)."""
    manifest = Manifest.find(path)
    return manifest.quantization.agreement if manifest and manifest.quantization else None


def _unsupported_precision(fmt: Format, precision: Precision) -> str | None:
    if precision in fmt.precisions:
        return None
    return f"the {fmt.name} exporter supports {' and '.join(p.value for p in fmt.precisions)} only"


class OnnxRuntime:
    name = "onnxruntime"
    format = FORMATS["onnx"]
    summary = "ONNX Runtime (CPU provider; CUDA/TensorRT when installed)"

    def unsupported(self, precision: Precision) -> str | None:
        return _unsupported_precision(self.format, precision)

    def unavailable(self, device: Device) -> str | None:
        missing = _missing(self.format)
        if missing or device is Device.CPU:
            return missing
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"
        return None

    def prepare(self, case: Case, progress) -> Prepared:
        # on CUDA the runner takes TensorRT first when this onnxruntime has it, then CUDA
        return _timed_runner(case, self.format, OnnxOptions(), progress,
                             RunnerOptions(threads=case.threads, device=case.device))


class ExecuTorch:
    name = "executorch"
    format = FORMATS["executorch"]
    summary = "ExecuTorch with the XNNPACK delegate"
    options = ExecuTorchOptions()

    def unsupported(self, precision: Precision) -> str | None:
        return _unsupported_precision(self.format, precision)

    def unavailable(self, device: Device) -> str | None:
        if device is not Device.CPU:
            return "ExecuTorch runs on the CPU here; use --device cpu"
        return _missing(self.format)

    def prepare(self, case: Case, progress) -> Prepared:
        # The upstream graph leaves its qkv split and flatten-mean on portable kernels;
        # it is timed as it is (that cost is part of what the deploy form removes).
        options = self.options if case.form is Form.DEPLOY else replace(self.options, allow_portable=True)
        return _timed_runner(case, self.format, options, progress, RunnerOptions(threads=case.threads))


class ExecuTorchPortable(ExecuTorch):
    name = "executorch-portable"
    time_budget_s = 20.0  # reference kernels take seconds per image: fewer runs, see Schedule.fitted
    summary = f"ExecuTorch portable kernels, no delegate (for comparison; ~{time_budget_s:.0f} s per case)"
    options = ExecuTorchOptions(delegate=Delegate.PORTABLE)


class CoreML:
    name = "coreml"
    format = FORMATS["coreml"]
    summary = "CoreML (macOS only)"

    def unsupported(self, precision: Precision) -> str | None:
        return _unsupported_precision(self.format, precision)

    def unavailable(self, device: Device) -> str | None:
        if sys.platform != "darwin":
            return f"CoreML predictions need macOS (this is {sys.platform})"
        if device is not Device.CPU:
            return "CoreML picks its own compute units; use --device cpu"
        return _missing(self.format)

    def prepare(self, case: Case, progress) -> Prepared:
        options = CoreMLOptions(deployment_target=W8A8.minimum_target) if case.precision is Precision.W8A8 \
            else CoreMLOptions()
        return _timed_runner(case, self.format, options, progress,
                             RunnerOptions(threads=case.threads, coreml_engine=CoreMLEngine.COREML))
