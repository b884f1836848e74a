"""Modules that exist only in the deploy form."""

from __future__ import annotations

import torch
from torch import nn


class SpatialMean(nn.Module):
    """Mean over H and W: equals AdaptiveAvgPool2d((1, 1)) with `keepdim`, and
    x.flatten(2).mean(-1) without."""

    def __init__(self, keepdim: bool):
        super().__init__()
        self.keepdim = keepdim

    def forward(self, x):
        return x.mean(dim=(2, 3), keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"keepdim={self.keepdim}"


class QKVConvs(nn.Module):
    """Three 1x1 convs that return (q, k, v) directly, so nothing is sliced at run time."""

    def __init__(self, q: nn.Conv2d, k: nn.Conv2d, v: nn.Conv2d):
        super().__init__()
        self.q, self.k, self.v = q, k, v

    def forward(self, x):
        return self.q(x), self.k(x), self.v(x)


class ChannelAffine(nn.Module):
    """x * scale + shift per channel: an eval-mode BatchNorm as one scale-and-shift, with
    `scale` and `shift` stored in the (1, C, 1, 1) shape they broadcast in, so no reshape runs."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.scale = nn.Parameter(scale.detach().reshape(1, -1, 1, 1).clone(), requires_grad=False)
        self.shift = nn.Parameter(shift.detach().reshape(1, -1, 1, 1).clone(), requires_grad=False)

    def forward(self, x):
        return x * self.scale + self.shift
