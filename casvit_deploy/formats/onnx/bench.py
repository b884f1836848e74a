"""The `casvit bench -b onnxruntime` backend: ONNX files in ONNX Runtime, on the CPU provider
or, with --device cuda, TensorRT/CUDA where this onnxruntime has them."""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.formats.onnx.options import OnnxOptions
from casvit_deploy.runtime.base import RunnerOptions
from casvit_deploy.settings import Device, Form, Precision


class OnnxRuntimeTarget:
    name = "onnxruntime"
    summary = "ONNX Runtime (CPU provider; CUDA/TensorRT when installed)"

    def unavailable(self, device: Device) -> str | None:
        if device is Device.CPU:
            return None
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"
        return None

    def export_options(self, precision: Precision, form: Form) -> OnnxOptions:
        return OnnxOptions()

    def runner_options(self, threads: int | None, device: Device) -> RunnerOptions:
        return RunnerOptions(threads=threads, device=device)

    def accepts(self, options) -> bool:
        return True

    def profile(self, artifact: Path, threads: int, runs: int, work_dir: Path):
        """Where the time goes, per op kind (ONNX Runtime's profiler, CPU provider)."""
        from casvit_deploy.formats.onnx.profile import profile

        return profile(artifact, threads, runs, work_dir)
