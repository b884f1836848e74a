"""CoreML export options, and what executes a package (the runner's engines)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from casvit_deploy.artifacts.options import FormatOptions
from casvit_deploy.errors import UsageError

DEFAULT_DEPLOYMENT_TARGET = "iOS16"
PALETTE_BITS = (8, 6, 4)
IMAGENET_LABELS = "imagenet"  # --labels value: the ImageNet-1k class names shipped with the package


class CoreMLEngine(str, Enum):
    """What executes a Core ML package: Apple's runtime (macOS), this package's MIL
    reference interpreter, both, or the best one available here (auto)."""

    AUTO = "auto"
    COREML = "coreml"
    MIL_REFERENCE = "mil-reference"
    BOTH = "both"


@dataclass(frozen=True)
class CoreMLOptions(FormatOptions):
    image_input: bool = False           # RGB pixel-buffer input, ImageNet normalization folded in
    labels: Path | None = None          # class labels file, or "imagenet": the package becomes a classifier
    deployment_target: str = DEFAULT_DEPLOYMENT_TARGET
    fp16_output: bool = False           # fp16 programs: keep the output float16 (default: cast to float32)
    author: str | None = None           # model metadata Xcode shows (None: casvit-deploy's defaults)
    license: str | None = None
    version: str | None = None
    description: str | None = None
    palettize: int | None = None        # k-means palettized weights of this many bits (PALETTE_BITS)
    fp16_safe: bool = False             # keep the blocks the fp16 pre-check flags in fp32

    def __post_init__(self):
        if self.palettize is not None and self.palettize not in PALETTE_BITS:
            raise UsageError(f"--palettize {self.palettize!r}: choose {', '.join(map(str, PALETTE_BITS))} bits")

    @property
    def classifier(self) -> bool:
        return self.labels is not None

    def target(self) -> dict:
        return {"deployment_target": self.deployment_target}

    @property
    def lossy(self) -> bool:
        """Palettized weights are lossy whatever the precision: judged by agreement, as int8."""
        return self.palettize is not None
