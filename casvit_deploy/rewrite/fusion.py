"""Fusion maths: each helper returns a new module and states the identity it relies on."""

from __future__ import annotations

import torch
from torch import nn


def bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with eval-mode BN(x) = scale * x + shift per channel."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _conv_like(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    out = nn.Conv2d(
        weight.shape[1] * conv.groups, weight.shape[0], conv.kernel_size, conv.stride,
        conv.padding, conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
        device=weight.device, dtype=weight.dtype,
    )
    out.weight.copy_(weight)
    out.bias.copy_(bias)
    return out


def _bias_or_zeros(layer: nn.Conv2d | nn.Linear) -> torch.Tensor:
    if layer.bias is not None:
        return layer.bias
    return torch.zeros(layer.weight.shape[0], dtype=layer.weight.dtype, device=layer.weight.device)


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """BN(conv(x)) = conv'(x) with W' = W·s[o], b' = b·s + t, (s, t) = BN's affine form."""
    scale, shift = bn_affine(bn)
    weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    return _conv_like(conv, weight, _bias_or_zeros(conv) * scale + shift)


def _require_pointwise(conv: nn.Conv2d) -> None:
    if conv.kernel_size != (1, 1) or conv.groups != 1 or conv.padding not in ((0, 0), "valid"):
        raise ValueError("folding a BN forward needs a 1x1, ungrouped, unpadded conv")


@torch.no_grad()
def fold_bn_into_pointwise(bn: nn.BatchNorm2d, conv: nn.Conv2d) -> nn.Conv2d:
    """conv(BN(x)) = conv'(x) with W'[o,i] = W[o,i]·s[i], b' = b + Σ_i W[o,i]·t[i].

    Exact only for a 1x1 ungrouped conv without padding (zero padding of BN(x) is not
    BN of zero padding), which is checked.
    """
    _require_pointwise(conv)
    scale, shift = bn_affine(bn)
    weight = conv.weight * scale.reshape(1, -1, 1, 1)
    bias = _bias_or_zeros(conv) + conv.weight.flatten(1) @ shift
    return _conv_like(conv, weight, bias)


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    out = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
    out.weight.copy_(weight)
    out.bias.copy_(bias)
    return out


@torch.no_grad()
def fold_bn_into_linear(bn: nn.BatchNorm2d, linear: nn.Linear) -> nn.Linear:
    """linear(mean_hw(BN(x))) = linear'(mean_hw(x)): the mean over H·W commutes with the
    per-channel affine BN, so W' = W·s[i], b' = b + W·t."""
    scale, shift = bn_affine(bn)
    return _linear(linear.weight * scale.reshape(1, -1), linear.bias + linear.weight @ shift)


@torch.no_grad()
def average_linears(a: nn.Linear, b: nn.Linear) -> nn.Linear:
    """(a(x) + b(x)) / 2 = x·((Wa + Wb)/2)ᵀ + (ba + bb)/2."""
    return _linear((a.weight + b.weight) / 2, (a.bias + b.bias) / 2)


@torch.no_grad()
def split_conv_outputs(conv: nn.Conv2d, parts: int) -> list[nn.Conv2d]:
    """conv(x).chunk(parts, 1)[i] = conv_i(x), conv_i holding the i-th slice of output rows."""
    weights = conv.weight.chunk(parts, 0)
    biases = _bias_or_zeros(conv).chunk(parts, 0)
    return [_conv_like(conv, w, b) for w, b in zip(weights, biases)]
