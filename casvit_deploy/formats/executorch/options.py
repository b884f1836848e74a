"""ExecuTorch export options: the delegate a program is lowered to, and whether ops may be
left on portable kernels."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from casvit_deploy.artifacts.options import FormatOptions


class Delegate(str, Enum):
    """ExecuTorch lowering: XNNPACK, the Core ML delegate, or none (portable kernels)."""

    XNNPACK = "xnnpack"
    COREML = "coreml"
    PORTABLE = "portable"


@dataclass(frozen=True)
class ExecuTorchOptions(FormatOptions):
    delegate: Delegate = Delegate.XNNPACK
    allow_portable: bool = False        # accept ops left on portable kernels
    speed_choice: bool = True        # int8: op kinds run int8 only where that is faster here (speed.py)
    unnamed: ClassVar[tuple[str, ...]] = ("allow_portable",)  # accepts an artifact, changes none

    def target(self) -> dict:
        return {"delegate": self.delegate.value}

    def name_tags(self) -> tuple[str, ...]:
        """A delegate other than XNNPACK (e.g. "portable"), and "nospeedchoice"."""
        return ((self.delegate.value,) * (self.delegate is not Delegate.XNNPACK)
                + ("nospeedchoice",) * (not self.speed_choice) + super().name_tags())
