"""Random weights that behave like a trained network's on photographs.

Plain random weights with random BN statistics let S/M/T activations grow without bound
on real images (the token mixer's `dwc(q + k) * v` is quadratic in its input), so
agreement figures (int8, fp16, compression) computed with them mean nothing. Here the
weights are drawn as `randomize` draws them, then:
  - each residual branch's output conv (LocalIntegration's last 1x1, the mixer's `proj`,
    the MLP's `fc2`) is scaled to gain RESIDUAL_GAIN, as trained residual networks keep
    their branches small against the skip path;
  - every BatchNorm takes its running statistics from the batch it sees on `images`,
    in forward order (one pass: each BN is set just before it runs, so later BNs see
    inputs normalized by the earlier, already calibrated ones);
  - the pre-attention BN's affine parameters (`norm1`) are scaled by NORM1_GAIN.
Such weights keep every variant's logits finite at twice the input scale.
"""

from __future__ import annotations

import torch
from torch import nn

from casvit_deploy.model.casvit import AdditiveBlock, CASViT
from casvit_deploy.model.factory import CONV_GAIN, build_model, randomize

RESIDUAL_GAIN = 0.1
NORM1_GAIN = 0.3


def _residual_outputs(model: nn.Module) -> list[nn.Conv2d]:
    convs = []
    for block in model.modules():
        if isinstance(block, AdditiveBlock):
            convs += [block.local_perception.network[-1], block.attn.proj, block.mlp.fc2]
    return convs


def _set_stats_before_run(bn: nn.BatchNorm2d, inputs: tuple[torch.Tensor]) -> None:
    x = inputs[0].double()
    bn.running_mean.copy_(x.mean(dim=(0, 2, 3)).to(bn.running_mean.dtype))
    bn.running_var.copy_(x.var(dim=(0, 2, 3), unbiased=False).to(bn.running_var.dtype))


@torch.no_grad()
def calibrate_batchnorms(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """Set every BN's running statistics, in place, from its input on `images` (one eval
    pass in forward order). Returns `model`."""
    hooks = [m.register_forward_pre_hook(_set_stats_before_run)
             for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    try:
        model.eval()(images.to(next(model.parameters()).dtype))
    finally:
        for hook in hooks:
            hook.remove()
    return model


@torch.no_grad()
def make_trained_like(model: CASViT, images: torch.Tensor, seed: int = 0) -> CASViT:
    """Redraw `model`'s weights (seeded), in place, so that it behaves like a trained
    network on `images` (N, 3, H, W normalized photographs, ideally mixed with noise)."""
    randomize(model, seed)
    for conv in _residual_outputs(model):
        conv.weight.mul_(RESIDUAL_GAIN / CONV_GAIN)
    calibrate_batchnorms(model, images)
    for block in model.modules():
        if isinstance(block, AdditiveBlock) and isinstance(block.norm1, nn.BatchNorm2d):
            block.norm1.weight.mul_(NORM1_GAIN)
            block.norm1.bias.mul_(NORM1_GAIN)
    return model.eval()


def trained_like_model(variant: str, images: torch.Tensor, seed: int = 0, **kwargs) -> CASViT:
    """A seeded CAS-ViT of `variant` whose random weights behave like trained ones on `images`."""
    return make_trained_like(build_model(variant, **kwargs), images, seed)
