"""From the user's choice (checkpoint or variant) to the model a command works on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from casvit_deploy.model import RANDOM_WEIGHTS_NOTE, CASViT, CheckpointInfo, get_variant, load_checkpoint, random_model
from casvit_deploy.rewrite import to_deploy

DEFAULT_VARIANT = "xs"
DEFAULT_RESOLUTION = 224
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
    def checkpoint_sha256(self) -> str | None:
        return self.checkpoint.sha256 if self.checkpoint else None

    @property
    def num_classes(self) -> int:
        return getattr(self.model, "num_classes", 0)

    @property
    def native_resolution(self) -> int:
        """The checkpoint's training resolution when recorded, else 224."""
        size = self.checkpoint.input_size if self.checkpoint else None
        return size if isinstance(size, int) and size % 32 == 0 else DEFAULT_RESOLUTION


def load_model(checkpoint: Path | str | None = None, variant: str | None = None,
               ema: bool = False, seed: int = DEFAULT_SEED) -> LoadedModel:
    """The checkpoint's model, or without one a seeded random-weights model of `variant`."""
    if checkpoint is not None:
        model, info = load_checkpoint(checkpoint, variant, ema)
        return LoadedModel(model, info.variant, info)
    name = get_variant(variant or DEFAULT_VARIANT).name
    return LoadedModel(random_model(name, seed=seed), name, None, seed)


def deploy_form(loaded: LoadedModel, rewrite: bool = True, disable: tuple[str, ...] = ()) -> tuple[nn.Module, list[str]]:
    """The model a command exports or runs: deploy form unless `rewrite` is False."""
    if not rewrite:
        return loaded.model, []
    return to_deploy(loaded.model, disable)


def check_resolution(resolution: int) -> int:
    from casvit_deploy.errors import UsageError

    if resolution < 32 or resolution % 32:
        raise UsageError(f"--resolution {resolution} is not a positive multiple of 32 (try 224, 256 or 384)")
    return resolution
