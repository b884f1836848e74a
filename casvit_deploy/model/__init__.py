"""The CAS-ViT definition, variant table and checkpoint reading.

The names below load their module on first use (PEP 562), so that importing a light part
(`casvit_deploy.model.variants`) does not import torch: the format table and the CLI's help
stay instant.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "CASViT": "casvit", "CheckpointInfo": "checkpoint", "load_checkpoint": "checkpoint",
    "LoadedModel": "loading", "check_resolution": "loading", "load_model": "loading",
    "RANDOM_WEIGHTS_NOTE": "factory", "build_model": "factory", "random_model": "factory", "randomize": "factory",
    "IMAGENET_MEAN": "variants", "IMAGENET_STD": "variants", "VARIANTS": "variants", "Variant": "variants",
    "get_variant": "variants",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
