"""CoreML export options, and what executes a package (the runner's engines)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
from enum import Enum
from pathlib import Path

from casvit_deploy.artifacts.options import FormatOptions, name_tag
from casvit_deploy.errors import UsageError

DEFAULT_DEPLOYMENT_TARGET = "iOS16"
PALETTE_BITS = (8, 6, 4)
IMAGENET_LABELS = "imagenet"  # --labels value: the ImageNet-1k class names shipped with the package


def is_imagenet(source: Path | str | None) -> bool:
    """Whether a --labels value names the ImageNet-1k class names."""
    return source is not None and str(source).strip().lower() == IMAGENET_LABELS


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
    unnamed: ClassVar[tuple[str, ...]] = ("author", "license", "version", "description")

    def __post_init__(self):
        if self.palettize is not None and self.palettize not in PALETTE_BITS:
            raise UsageError(f"--palettize {self.palettize!r}: choose {', '.join(map(str, PALETTE_BITS))} bits")

    @property
    def classifier(self) -> bool:
        return self.labels is not None

    def target(self) -> dict:
        return {"deployment_target": self.deployment_target}

    def name_tags(self) -> tuple[str, ...]:
        """e.g. casvit_xs_224_fp16_image_imagenet.mlpackage: image input, labels ("imagenet" or
        "labels-" and the file's name), palettization, a deployment target other than the
        default, fp16 output, fp16-safe."""
        named = {"image": self.image_input, self._labels_tag(): self.classifier,
                 f"palettized{self.palettize}": self.palettize is not None,
                 name_tag(self.deployment_target.lower()): self.deployment_target != DEFAULT_DEPLOYMENT_TARGET,
                 "fp16-output": self.fp16_output, "fp16-safe": self.fp16_safe}
        return tuple(tag for tag, given in named.items() if given) + super().name_tags()

    def _labels_tag(self) -> str:
        if self.labels is None or is_imagenet(self.labels):
            return IMAGENET_LABELS
        return name_tag(f"labels-{Path(self.labels).stem}")

    @property
    def lossy(self) -> bool:
        """Palettized weights are lossy whatever the precision: judged by agreement, as int8."""
        return self.palettize is not None
