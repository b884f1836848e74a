"""The `.ort` runner: ONNX Runtime's own model format (ORT Mobile), in ONNX Runtime
(runtime/onnxruntime.py), as `.onnx` files run.

The graph inside is a flatbuffer that cannot be given extra outputs, so this runner reads
no intermediates (parity localization says so).
"""

from __future__ import annotations

from casvit_deploy.artifacts.records import Signature, TensorSpec
from casvit_deploy.runtime.onnxruntime import OnnxRuntimeRunner

ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
              "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}


class OrtRunner(OnnxRuntimeRunner):
    """An `.ort` file in onnxruntime (same providers and threads as `.onnx`)."""

    def open(self) -> None:
        super().open()
        self.description += ", ORT format"

    def signature(self) -> Signature:
        """Inputs and outputs as the loaded session reports them (a flatbuffer, not an ONNX
        protobuf: onnx cannot read it)."""
        def spec(arg) -> TensorSpec:
            return TensorSpec(arg.name, tuple(arg.shape), ORT_DTYPES.get(arg.type, arg.type))

        return Signature(tuple(map(spec, self.session.get_inputs())), tuple(map(spec, self.session.get_outputs())))
