"""The `casvit bench -b litert` backend: `.tflite` files in ai-edge-litert's interpreter (XNNPACK)."""

from __future__ import annotations

from casvit_deploy.formats.litert.options import LiteRTOptions
from casvit_deploy.runtime.base import RunnerOptions
from casvit_deploy.settings import Device, Form, Precision


class LiteRTTarget:
    name = "litert"
    summary = "LiteRT (TensorFlow Lite) interpreter with XNNPACK"

    def unavailable(self, device: Device) -> str | None:
        return None if device is Device.CPU else "the LiteRT interpreter runs on the CPU here; use --device cpu"

    def export_options(self, precision: Precision, form: Form) -> LiteRTOptions:
        return LiteRTOptions()

    def runner_options(self, threads: int | None, device: Device) -> RunnerOptions:
        return RunnerOptions(threads=threads)

    def accepts(self, options) -> bool:
        return True
