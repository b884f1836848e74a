"""The `casvit bench -b coreml` backend: packages predicted by Apple's Core ML runtime
(macOS only)."""

from __future__ import annotations

import sys

from casvit_deploy.formats.coreml.compression import W8A8
from casvit_deploy.formats.coreml.options import CoreMLEngine, CoreMLOptions
from casvit_deploy.runtime.base import RunnerOptions
from casvit_deploy.settings import Device, Form, Precision


class CoreMLTarget:
    name = "coreml"
    summary = "CoreML (macOS only)"

    def unavailable(self, device: Device) -> str | None:
        if sys.platform != "darwin":
            return f"CoreML predictions need macOS (this is {sys.platform})"
        if device is not Device.CPU:
            return "CoreML picks its own compute units; use --device cpu"
        return None

    def export_options(self, precision: Precision, form: Form) -> CoreMLOptions:
        """W8A8 needs its minimum deployment target; every other package the default one."""
        return CoreMLOptions(deployment_target=W8A8.minimum_target) if precision is Precision.W8A8 \
            else CoreMLOptions()

    def runner_options(self, threads: int | None, device: Device) -> RunnerOptions:
        return RunnerOptions(threads=threads, engine=CoreMLEngine.COREML)

    def accepts(self, options) -> bool:
        return True
