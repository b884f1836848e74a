"""ONNX export options: the default-domain opset (the IR version follows it)."""

from __future__ import annotations

from dataclasses import dataclass

from casvit_deploy.artifacts.options import FormatOptions
from casvit_deploy.errors import UsageError

OPSETS = (17, 18, 19, 20)
DEFAULT_OPSET = 20


@dataclass(frozen=True)
class OnnxOptions(FormatOptions):
    opset: int = DEFAULT_OPSET

    def __post_init__(self):
        if self.opset not in OPSETS:
            raise UsageError(f"--opset {self.opset}: choose one of {', '.join(map(str, OPSETS))}")

    def name_tags(self) -> tuple[str, ...]:
        return (f"opset{self.opset}",) * (self.opset != DEFAULT_OPSET) + super().name_tags()
