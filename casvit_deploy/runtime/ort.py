"""ONNX Runtime's own model format (`.ort`, ORT Mobile) as a Runner.

ONNX Runtime loads an `.ort` file as it loads an `.onnx` one; the graph inside is a
flatbuffer that cannot be given extra outputs, so this runner reads no intermediates
(parity localization says so).
"""

from __future__ import annotations

from casvit_deploy.runtime.base import Runner
from casvit_deploy.runtime.onnx import OnnxRunner


class OrtRunner(OnnxRunner):
    """An `.ort` file in onnxruntime (same providers and threads as `.onnx`)."""

    supports_intermediates = False
    block_tensors = Runner.block_tensors
    run_intermediates = Runner.run_intermediates

    def open(self) -> None:
        super().open()
        self.description += ", ORT format"
