"""What an ORT-format manifest records about its file."""

from __future__ import annotations

from dataclasses import dataclass

from casvit_deploy.artifacts.details import Details


@dataclass
class OrtDetails(Details):
    """The source graph's opset and IR version, the ORT format version, the first ONNX
    Runtime release that loads the file, the converter's optimization settings, the operators
    a reduced ONNX Runtime build must include, facts about the source `.onnx`, and the source
    graph's mobile usability."""

    opset: int | None = None
    ir_version: int | None = None
    ort_format_version: int | None = None
    min_onnxruntime: str | None = None
    optimization: dict | None = None
    required_operators: dict | None = None
    source_onnx: dict | None = None
    mobile_usability: dict | None = None

    def target(self) -> dict:
        found = {"opset": self.opset, "ir_version": self.ir_version, "min_onnxruntime": self.min_onnxruntime,
                 "ort_format_version": self.ort_format_version}
        return {k: v for k, v in found.items() if v is not None}

    def mobile_summary(self) -> str | None:
        return self.mobile_usability.get("summary") if isinstance(self.mobile_usability, dict) else None
