"""Model loading: from the user's choice (checkpoint or variant) to an eval-mode model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from casvit_deploy.errors import UsageError
from casvit_deploy.model.casvit import CASViT
from casvit_deploy.model.checkpoint import CheckpointInfo, load_checkpoint
from casvit_deploy.model.factory import RANDOM_WEIGHTS_NOTE, random_model
from casvit_deploy.model.variants import get_variant

DEFAULT_VARIANT = "xs"
DEFAULT_RESOLUTION = 224
DEFAULT_SEED = 0
RESOLUTION_MIN, RESOLUTION_MAX, RESOLUTION_STEP = 32, 2048, 32


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
    def checkpoint_sha256(self) -> str | None:
        return self.checkpoint.sha256 if self.checkpoint else None

    @property
    def num_classes(self) -> int:
        return getattr(self.model, "num_classes", 0)

    @property
    def native_resolution(self) -> int:
        """The checkpoint's training resolution when recorded, else 224; a recorded one that
        no artifact can have is a UsageError that says where it came from."""
        size = self.checkpoint.input_size if self.checkpoint else None
        if size is None:
            return DEFAULT_RESOLUTION
        return check_resolution(size, f"{Path(self.checkpoint.path).name}: args.input_size",
                                hint="; give --resolution to choose another")

    def input_resolution(self, requested: int | None) -> int:
        """`requested` (--resolution) when given, checked; else the native resolution."""
        return self.native_resolution if requested is None else check_resolution(requested)


def load_model(checkpoint: Path | str | None = None, variant: str | None = None,
               ema: bool = False, seed: int = DEFAULT_SEED) -> LoadedModel:
    """The checkpoint's model, or without one a seeded random-weights model of `variant`."""
    if checkpoint is not None:
        model, info = load_checkpoint(checkpoint, variant, ema)
        return LoadedModel(model, info.variant, info)
    name = get_variant(variant or DEFAULT_VARIANT).name
    return LoadedModel(random_model(name, seed=seed), name, None, seed)


def check_resolution(resolution: int, source: str = "--resolution", hint: str = "") -> int:
    """`resolution` if it is a multiple of 32 in 32..2048; UsageError naming `source` (where
    the value came from) otherwise."""
    if (not isinstance(resolution, int) or isinstance(resolution, bool) or resolution % RESOLUTION_STEP
            or not RESOLUTION_MIN <= resolution <= RESOLUTION_MAX):
        raise UsageError(f"{source} {resolution!r:.40} is not a multiple of {RESOLUTION_STEP} between {RESOLUTION_MIN} "
                         f"and {RESOLUTION_MAX} (try 224, 256 or 384){hint}")
    return resolution
