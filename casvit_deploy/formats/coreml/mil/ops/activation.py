"""Activations: relu, sigmoid, softmax, and gelu in its three MIL modes."""

from __future__ import annotations

import math

import torch

from casvit_deploy.formats.coreml.mil.registry import UnsupportedOpError, register


@register("relu")
def relu(x):
    return torch.relu(x)


@register("sigmoid")
def sigmoid(x):
    return torch.sigmoid(x)


@register("softmax")
def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis` (computed in float32, max-subtracted)."""
    return torch.softmax(x, dim=int(axis))


def _gelu_sigmoid(x):
    return x * torch.sigmoid(1.702 * x)


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


GELU_MODES = {
    "EXACT": lambda x: torch.nn.functional.gelu(x),
    "TANH_APPROXIMATION": _gelu_tanh,
    "SIGMOID_APPROXIMATION": _gelu_sigmoid,
}


@register("gelu")
def gelu(x, mode="EXACT"):
    """EXACT: 0.5x(1 + erf(x/√2)); TANH_APPROXIMATION: 0.5x(1 + tanh(√(2/π)(x + 0.044715x³)));
    SIGMOID_APPROXIMATION: x·sigmoid(1.702x)."""
    if mode not in GELU_MODES:
        raise UnsupportedOpError(f"gelu mode {mode!r} is not one of {', '.join(GELU_MODES)}")
    return GELU_MODES[mode](x)
