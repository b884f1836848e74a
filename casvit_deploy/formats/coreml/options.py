"""CoreML export options, and what executes a package (the runner's engines)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
from enum import Enum
from pathlib import Path

from casvit_deploy.artifacts.options import FormatOptions, budget_tags, check_top1_budget, name_tag
from casvit_deploy.errors import UsageError

DEFAULT_DEPLOYMENT_TARGET = "iOS16"
PALETTE_BITS = (8, 6, 4)
PALETTIZE_AUTO = "auto"  # --palettize value: the fewest bits that pass
IMAGENET_LABELS = "imagenet"  # --labels value: the ImageNet-1k class names shipped with the package


def is_imagenet(source: Path | str | None) -> bool:
    """Whether a --labels value names the ImageNet-1k class names."""
    return source is not None and str(source).strip().lower() == IMAGENET_LABELS


def palettize_options(value: str | int | None) -> dict:
    """--palettize's value as options: {"palettize": bits}, {"palettize_auto": True}, or {}
    when not given (a value that is neither reaches CoreMLOptions, which names the choices)."""
    if value is None:
        return {}
    text = str(value).strip().lower()
    if text == PALETTIZE_AUTO:
        return {"palettize_auto": True}
    return {"palettize": int(text) if text.isdigit() else str(value)}


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
    palettize_auto: bool = False        # the fewest bits that pass (--palettize auto)
    fp16_safe: bool = False             # keep the blocks the fp16 pre-check flags in fp32
    data: Path | None = None            # labelled images: the top-1 budget of --fp16-safe / --palettize auto...
    max_top1_drop: float | None = None  # ...in percentage points
    unnamed: ClassVar[tuple[str, ...]] = ("author", "license", "version", "description")

    def __post_init__(self):
        if self.palettize is not None and self.palettize not in PALETTE_BITS:
            raise UsageError(f"--palettize {self.palettize}: choose {', '.join(map(str, PALETTE_BITS))} bits "
                             f"or {PALETTIZE_AUTO}")
        if self.palettize is not None and self.palettize_auto:
            raise UsageError("--palettize takes a number of bits or auto, not both")
        check_top1_budget(self.data, self.max_top1_drop)
        if self.max_top1_drop is not None and not (self.fp16_safe or self.palettize_auto):
            raise UsageError("for CoreML, --data and --max-top1-drop set the top-1 budget of --fp16-safe or "
                             "--palettize auto; add one (to measure an artifact's accuracy, use casvit eval)")

    @property
    def classifier(self) -> bool:
        return self.labels is not None

    def target(self) -> dict:
        return {"deployment_target": self.deployment_target}

    def name_tags(self) -> tuple[str, ...]:
        """e.g. casvit_xs_224_fp16_image_imagenet.mlpackage: image input, labels ("imagenet" or
        "labels-" and the file's name), palettization, a deployment target other than the
        default, fp16 output, fp16-safe, a top-1 budget."""
        named = {"image": self.image_input, self._labels_tag(): self.classifier,
                 f"palettized{self.palettize}": self.palettize is not None, "palettized-auto": self.palettize_auto,
                 name_tag(self.deployment_target.lower()): self.deployment_target != DEFAULT_DEPLOYMENT_TARGET,
                 "fp16-output": self.fp16_output, "fp16-safe": self.fp16_safe}
        tags = tuple(tag for tag, given in named.items() if given)
        return tags + budget_tags(self.data, self.max_top1_drop) + super().name_tags()

    def _labels_tag(self) -> str:
        if self.labels is None or is_imagenet(self.labels):
            return IMAGENET_LABELS
        return name_tag(f"labels-{Path(self.labels).stem}")

    @property
    def lossy(self) -> bool:
        """Palettized weights are lossy whatever the precision: judged by agreement, as int8."""
        return self.palettize is not None or self.palettize_auto
