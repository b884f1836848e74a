"""Building models: from a variant name, with seeded random weights, or from a state dict."""

from __future__ import annotations

import torch
from torch import nn

from casvit_deploy.model.casvit import CASViT
from casvit_deploy.model.variants import get_variant

RANDOM_WEIGHTS_NOTE = "random weights, not pretrained"
CONV_GAIN, LINEAR_GAIN = 0.7, 3.0


def build_model(variant: str, num_classes: int = 1000, distillation: bool = False,
                fork_feat: bool = False) -> CASViT:
    """An eval-mode CAS-ViT with PyTorch's default initialisation."""
    return CASViT(get_variant(variant), num_classes, distillation, fork_feat).eval()


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every parameter and BN statistic with seeded random values, in place.

    Default BN statistics (mean 0, var 1, weight 1, bias 0) are an identity and hide
    folding bugs, so every BN gets non-trivial statistics here. Gains keep activations
    O(1) through all stages (CATM multiplies two activations, so larger gains explode)
    and spread the logits so that top-1 comparisons mean something.
    """
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.weight.copy_(0.5 + torch.rand(n, generator=gen))
            module.bias.copy_(0.2 * torch.randn(n, generator=gen))
            module.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
            module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            gain = LINEAR_GAIN if isinstance(module, nn.Linear) else CONV_GAIN
            fan_in = module.weight[0].numel()
            module.weight.copy_(gain * torch.randn(module.weight.shape, generator=gen) / fan_in**0.5)
            if module.bias is not None:
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
    return model


def random_model(variant: str, seed: int = 0, **kwargs) -> CASViT:
    """A seeded random-weights model: the built-in default when no checkpoint is given."""
    return randomize(build_model(variant, **kwargs), seed)
