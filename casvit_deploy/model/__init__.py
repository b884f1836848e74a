"""The CAS-ViT definition, variant table and checkpoint reading."""

from casvit_deploy.model.casvit import CASViT
from casvit_deploy.model.checkpoint import CheckpointInfo, load_checkpoint
from casvit_deploy.model.loading import LoadedModel, check_resolution, load_model
from casvit_deploy.model.factory import RANDOM_WEIGHTS_NOTE, build_model, random_model, randomize
from casvit_deploy.model.variants import IMAGENET_MEAN, IMAGENET_STD, VARIANTS, Variant, get_variant

__all__ = [
    "CASViT", "CheckpointInfo", "LoadedModel", "check_resolution", "load_model", "load_checkpoint", "RANDOM_WEIGHTS_NOTE", "build_model",
    "random_model", "randomize", "IMAGENET_MEAN", "IMAGENET_STD", "VARIANTS", "Variant", "get_variant",
]
