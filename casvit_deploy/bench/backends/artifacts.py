"""Artifact backends: ONNX Runtime, ExecuTorch (XNNPACK, or portable kernels) and CoreML.

Each runs an exported artifact through the project's runner for its format (one loader
per format). Without a user-given artifact, the case's model is exported once into the
export cache and reused by later runs.
"""

from __future__ import annotations

import importlib.util
import sys
import time

from casvit_deploy.bench.backends.base import Case, Prepared, input_batch, size_mb
from casvit_deploy.bench.cache import ExportKey, cached_export, weights_key
from casvit_deploy.manifests import manifest_path


def _missing(package: str, pip_name: str) -> str | None:
    if importlib.util.find_spec(package) is None:
        return f"{pip_name} is not installed: pip install {pip_name}"
    return None


def _artifact(case: Case, fmt: str, options: dict, progress) -> tuple:
    """(artifact, export seconds or None, passes) for the case: the user's file or the cache's."""
    if case.artifact is not None:
        return case.artifact, None, _manifest_passes(case.artifact)
    from casvit_deploy.pipeline import deploy_form

    passes = tuple(deploy_form(case.loaded, case.rewrite, case.disable)[1]) if case.rewrite else ()
    key = ExportKey(weights_key(case.loaded), case.loaded.variant, case.resolution, case.precision,
                    case.batch, fmt, passes, tuple(sorted((k, str(v)) for k, v in options.items())))
    path, seconds = cached_export(case.loaded, key, case.cache_dir, lambda stage: progress(f"export {fmt}: {stage}"))
    return path, seconds, list(passes)


def _manifest_passes(artifact) -> list[str]:
    import json

    try:
        manifest = json.loads(manifest_path(artifact).read_text())
    except (OSError, ValueError):
        return []
    return list(manifest.get("passes") or [])


def _timed_runner(case: Case, fmt: str, options: dict, progress, open_runner) -> Prepared:
    path, export_s, passes = _artifact(case, fmt, options, progress)
    start = time.perf_counter()
    runner = open_runner(path)
    load_s = time.perf_counter() - start
    x = input_batch(case.batch, case.resolution)
    return Prepared(lambda: runner.run(x), runner.engine, load_s, passes=passes, artifact=path,
                    artifact_mb=size_mb(path), export_s=export_s, threads=case.threads)


def _export_precision(fmt: str, precision: str) -> str | None:
    from casvit_deploy.export.registry import get_exporter

    supported = get_exporter(fmt).precisions
    return None if precision in supported else f"the {fmt} exporter supports {' and '.join(supported)} only"


class OnnxRuntime:
    name = "onnxruntime"
    summary = "ONNX Runtime (CPU provider; CUDA/TensorRT when installed)"

    def unsupported(self, precision: str) -> str | None:
        return _export_precision("onnx", precision)

    def unavailable(self, device: str) -> str | None:
        missing = _missing("onnxruntime", "onnxruntime")
        if missing or device == "cpu":
            return missing
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"
        return None

    def prepare(self, case: Case, progress) -> Prepared:
        from casvit_deploy.runtime.onnx import OnnxRunner
        from casvit_deploy.runtime.registry import onnx_providers

        # on CUDA: TensorRT first when this onnxruntime has it, then CUDA (unavailable() checked it)
        providers = ["CPUExecutionProvider"] if case.device == "cpu" else onnx_providers()
        return _timed_runner(case, "onnx", {}, progress,
                             lambda path: OnnxRunner(path, providers=providers, threads=case.threads))


def set_executorch_threads(threads: int) -> None:
    """Size ExecuTorch's shared threadpool (used by XNNPACK) to `threads`."""
    from executorch.extension.pybindings import portable_lib

    if portable_lib._threadpool_get_thread_count() != threads:
        portable_lib._unsafe_reset_threadpool(threads)


class ExecuTorch:
    name = "executorch"
    summary = "ExecuTorch with the XNNPACK delegate"
    options: dict = {}

    def unsupported(self, precision: str) -> str | None:
        return _export_precision("executorch", precision)

    def unavailable(self, device: str) -> str | None:
        if device != "cpu":
            return "ExecuTorch runs on the CPU here; use --device cpu"
        return _missing("executorch", "executorch")

    def prepare(self, case: Case, progress) -> Prepared:
        from casvit_deploy.runtime.executorch import ExecuTorchRunner

        set_executorch_threads(case.threads)
        # The upstream graph leaves its qkv split and flatten-mean on portable kernels;
        # it is timed as it is (that cost is part of what the deploy form removes).
        options = self.options if case.rewrite else {**self.options, "allow_portable": True}
        return _timed_runner(case, "executorch", options, progress, ExecuTorchRunner)


class ExecuTorchPortable(ExecuTorch):
    name = "executorch-portable"
    time_budget_s = 20.0  # reference kernels take seconds per image: fewer runs, see Schedule.fitted
    summary = f"ExecuTorch portable kernels, no delegate (for comparison; ~{time_budget_s:.0f} s per case)"
    options = {"backend": "portable"}


class CoreML:
    name = "coreml"
    summary = "CoreML (macOS only)"

    def unsupported(self, precision: str) -> str | None:
        return _export_precision("coreml", precision)

    def unavailable(self, device: str) -> str | None:
        if sys.platform != "darwin":
            return f"CoreML predictions need macOS (this is {sys.platform})"
        if device != "cpu":
            return "CoreML picks its own compute units; use --device cpu"
        return _missing("coremltools", "coremltools")

    def prepare(self, case: Case, progress) -> Prepared:
        from casvit_deploy.runtime.registry import open_runner

        return _timed_runner(case, "coreml", {}, progress, lambda path: open_runner(path, engine="coreml"))
