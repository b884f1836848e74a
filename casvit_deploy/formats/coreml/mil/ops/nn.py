"""Layers: conv (1-3 spatial dims), linear, batch_norm."""

from __future__ import annotations

import math

import torch.nn.functional as F

from casvit_deploy.formats.coreml.mil.registry import UnsupportedOpError, register

CONV_FNS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def same_padding(size: int, kernel: int, stride: int, dilation: int, lower: bool) -> tuple[int, int]:
    """(before, after) padding so that the output has ceil(size / stride) elements; an odd
    total puts the extra element after ('same') or before ('same_lower')."""
    dilated = (kernel - 1) * dilation + 1
    total = max(0, (math.ceil(size / stride) - 1) * stride + dilated - size)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


def conv_padding(pad_type: str, pad, x_shape, kernel, strides, dilations) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dimension for a MIL `pad_type`."""
    if pad_type == "valid":
        return [(0, 0)] * len(kernel)
    if pad_type == "custom":
        return [(int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(len(kernel))]
    if pad_type in ("same", "same_lower"):
        return [same_padding(s, k, st, d, pad_type == "same_lower")
                for s, k, st, d in zip(x_shape, kernel, strides, dilations)]
    raise UnsupportedOpError(f"conv pad_type {pad_type!r} is not one of valid, custom, same, same_lower")


@register("conv", ("x", "weight", "bias"))
def conv(x, weight, pad_type, strides=None, pad=None, dilations=None, groups=1, bias=None):
    """Cross-correlation of NC[D]HW `x` with `weight` [C_out, C_in/groups, *K]."""
    kernel = list(weight.shape[2:])
    rank = len(kernel)
    strides = list(strides) if strides is not None else [1] * rank
    dilations = list(dilations) if dilations is not None else [1] * rank
    padding = conv_padding(pad_type, pad, x.shape[2:], kernel, strides, dilations)
    if all(b == a for b, a in padding):
        pad_arg = [b for b, _ in padding]
    else:  # asymmetric: pad explicitly (F.pad lists the last dimension first)
        x = F.pad(x, [p for pair in reversed(padding) for p in pair])
        pad_arg = [0] * rank
    return CONV_FNS[rank](x, weight, bias, strides, pad_arg, dilations, int(groups))


@register("linear", ("x", "weight", "bias"))
def linear(x, weight, bias=None):
    """x·weightᵀ + bias, weight [out, in]."""
    return F.linear(x, weight, bias)


@register("batch_norm", ("x", "mean", "variance", "gamma", "beta"))
def batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    """(x - mean) / sqrt(variance + epsilon) · gamma + beta over axis 1 (channels)."""
    return F.batch_norm(x, mean, variance, gamma, beta, training=False, eps=float(epsilon))
