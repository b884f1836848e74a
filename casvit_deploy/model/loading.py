"""Model loading: from the user's choice (checkpoint or variant) to an eval-mode model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from casvit_deploy.errors import UsageError
from casvit_deploy.model.casvit import CASViT
from casvit_deploy.model.checkpoint import CheckpointInfo, load_checkpoint
from casvit_deploy.model.factory import RANDOM_WEIGHTS_NOTE, random_model
from casvit_deploy.model.variants import get_variant
from casvit_deploy.settings import (  # noqa: F401  (the bounds are re-exported: they used to live here)
    RESOLUTION_MAX,
    RESOLUTION_MIN,
    RESOLUTION_STEP,
    Resolution,
)

DEFAULT_VARIANT = "xs"
DEFAULT_RESOLUTION = Resolution(224, 224)
DEFAULT_SEED = 0


@dataclass
class LoadedModel:
    """An upstream-form, eval-mode model and where its weights came from."""

    model: CASViT
    variant: str
    checkpoint: CheckpointInfo | None
    seed: int = DEFAULT_SEED

    @property
    def weights(self) -> str:
        """'checkpoint <path>' or the random-weights note that every output must carry."""
        return f"checkpoint {self.checkpoint.path}" if self.checkpoint else RANDOM_WEIGHTS_NOTE

    @property
    def notes(self) -> list[str]:
        """How the checkpoint was read, where a user should know (e.g. keys ignored)."""
        return self.checkpoint.notes if self.checkpoint else []

    @property
    def checkpoint_sha256(self) -> str | None:
        return self.checkpoint.sha256 if self.checkpoint else None

    @property
    def num_classes(self) -> int:
        """The classifier's classes; 0 for a dense-prediction backbone."""
        return getattr(self.model, "num_classes", 0)

    @property
    def is_backbone(self) -> bool:
        """A dense-prediction backbone (the reference's `fork_feat`: four feature maps)."""
        return bool(getattr(self.model, "fork_feat", False))

    @property
    def native_resolution(self) -> Resolution:
        """The checkpoint's training resolution when recorded (square), else 224; a recorded
        one that no artifact can have is a UsageError that says where it came from."""
        size = self.checkpoint.input_size if self.checkpoint else None
        if size is None:
            return DEFAULT_RESOLUTION
        return check_resolution(size, f"{Path(self.checkpoint.path).name}: args.input_size",
                                hint="; give --resolution to choose another")

    def input_resolution(self, requested: Resolution | int | str | None) -> Resolution:
        """`requested` (--resolution) when given, checked; else the native resolution."""
        return self.native_resolution if requested is None else check_resolution(requested)


def load_model(checkpoint: Path | str | None = None, variant: str | None = None,
               ema: bool = False, seed: int = DEFAULT_SEED, backbone: bool = False) -> LoadedModel:
    """The checkpoint's model, or without one a seeded random-weights model of `variant`:
    a classifier, or with `backbone` the four-output dense-prediction backbone. A
    checkpoint's kind is read from its tensors; `backbone` with a classifier's is an error."""
    if checkpoint is not None:
        model, info = load_checkpoint(checkpoint, variant, ema)
        if backbone and not info.fork_feat:
            raise UsageError(f"{checkpoint} holds a classifier, not a dense-prediction backbone; drop --backbone")
        return LoadedModel(model, info.variant, info)
    name = get_variant(variant or DEFAULT_VARIANT).name
    return LoadedModel(random_model(name, seed=seed, fork_feat=backbone), name, None, seed)


def check_resolution(resolution: Resolution | int | str, source: str = "--resolution", hint: str = "") -> Resolution:
    """`resolution` (224, "224", "512x768" or a Resolution) as a Resolution; UsageError
    naming `source` (where the value came from, followed by `hint`) unless each side is a
    multiple of 32 from 32 to 2048."""
    try:
        return Resolution.parse(resolution, source)
    except UsageError as err:
        raise UsageError(f"{err}{hint}") from None
