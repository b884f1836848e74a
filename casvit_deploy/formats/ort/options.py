"""ORT format export options: the opset of the ONNX graph it is converted from (None until
the export pipeline fills it from that ONNX export's options, which check it)."""

from __future__ import annotations

from dataclasses import dataclass

from casvit_deploy.artifacts.options import FormatOptions


@dataclass(frozen=True)
class OrtOptions(FormatOptions):
    opset: int | None = None
