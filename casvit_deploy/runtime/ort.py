"""ONNX Runtime's own model format (`.ort`, ORT Mobile) as a Runner.

ONNX Runtime loads an `.ort` file as it loads an `.onnx` one; the graph inside is a
flatbuffer that cannot be given extra outputs, so this runner reads no intermediates
(parity localization says so).
"""

from __future__ import annotations

from casvit_deploy.artifacts.manifest import Signature, TensorSpec
from casvit_deploy.runtime.base import Runner
from casvit_deploy.runtime.onnx import OnnxRunner

ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
              "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}


class OrtRunner(OnnxRunner):
    """An `.ort` file in onnxruntime (same providers and threads as `.onnx`)."""

    supports_intermediates = False
    block_tensors = Runner.block_tensors
    run_intermediates = Runner.run_intermediates

    def open(self) -> None:
        super().open()
        self.description += ", ORT format"

    def signature(self) -> Signature:
        """Inputs and outputs as the loaded session reports them (a flatbuffer, not an ONNX
        protobuf: onnx cannot read it)."""
        def spec(arg) -> TensorSpec:
            return TensorSpec(arg.name, tuple(arg.shape), ORT_DTYPES.get(arg.type, arg.type))

        return Signature(tuple(map(spec, self.session.get_inputs())), tuple(map(spec, self.session.get_outputs())))
