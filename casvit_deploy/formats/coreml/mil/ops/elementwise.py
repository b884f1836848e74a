"""Binary elementwise ops with NumPy broadcasting: add, sub, mul, real_div."""

from __future__ import annotations

import torch

from casvit_deploy.formats.coreml.mil.registry import register

BINARY = ("x", "y")


@register("add", BINARY)
def add(x, y):
    return torch.add(x, y)


@register("sub", BINARY)
def sub(x, y):
    return torch.sub(x, y)


@register("mul", BINARY)
def mul(x, y):
    return torch.mul(x, y)


@register("real_div", BINARY)
def real_div(x, y):
    return torch.div(x, y)
