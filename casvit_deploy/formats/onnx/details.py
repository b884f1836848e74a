"""What an ONNX manifest records about its graph."""

from __future__ import annotations

from dataclasses import dataclass

from casvit_deploy.artifacts.details import Details


@dataclass
class OnnxDetails(Details):
    """The opset and IR version written and the first ONNX Runtime release that loads them;
    whether the exporter's optimizer ran and how GELU is written; for int8 the load check of
    the fp32 graph that was quantized; for a free height and width what the caller must
    check; what ONNX Runtime's mobile usability checker says of the graph."""

    opset: int | None = None
    ir_version: int | None = None
    min_onnxruntime: str | None = None
    optimized: bool | None = None
    onnx_graph_rewrites: list | None = None
    gelu_fused: int | None = None
    gelu_op: str | None = None
    fp32_load_check: dict | None = None
    dynamic_shape: dict | None = None
    mobile_usability: dict | None = None

    def target(self) -> dict:
        found = {"opset": self.opset, "ir_version": self.ir_version, "min_onnxruntime": self.min_onnxruntime}
        return {k: v for k, v in found.items() if v is not None}

    def mobile_summary(self) -> str | None:
        return self.mobile_usability.get("summary") if isinstance(self.mobile_usability, dict) else None
