"""LiteRT export options: the layout of the image input."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from casvit_deploy.artifacts.options import FormatOptions


class Layout(str, Enum):
    """How the image input is laid out: NCHW (as every other format), or NHWC, what Android
    camera pipelines and LiteRT's own kernels use (one transpose fewer in the file)."""

    NCHW = "nchw"
    NHWC = "nhwc"


@dataclass(frozen=True)
class LiteRTOptions(FormatOptions):
    input_layout: Layout = Layout.NCHW

    def name_tags(self) -> tuple[str, ...]:
        """"nhwc" for an NHWC input."""
        return (self.input_layout.value,) * (self.input_layout is not Layout.NCHW) + super().name_tags()
