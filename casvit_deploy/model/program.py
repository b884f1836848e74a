"""The `torch.export` step shared by every format (and by parity, which rebuilds the
program an int8 artifact was quantized from)."""

from __future__ import annotations

import torch
from torch import nn

from casvit_deploy.settings import RESOLUTION_MAX, RESOLUTION_MIN, RESOLUTION_STEP, Resolution

MAX_DYNAMIC_BATCH = 1024


def example_input(batch: int, resolution: Resolution | int, dynamic_batch: bool = False) -> torch.Tensor:
    """A seeded float32 NCHW example; batch >= 2 when dynamic (size 1 would be specialized)."""
    n = max(batch, 2) if dynamic_batch else batch
    gen = torch.Generator().manual_seed(0)
    return torch.randn(Resolution.parse(resolution).shape(n), generator=gen)


def _dynamic_shapes(dynamic_batch: bool, dynamic_shape: bool):
    """torch.export dims: a free batch; height and width as 32 x a free integer, so every
    stride-2 stage divides them exactly (the multiple of 32 is part of the program)."""
    dims = {}
    if dynamic_batch:
        dims[0] = torch.export.Dim("batch", min=1, max=MAX_DYNAMIC_BATCH)
    if dynamic_shape:
        steps = dict(min=RESOLUTION_MIN // RESOLUTION_STEP, max=RESOLUTION_MAX // RESOLUTION_STEP)
        dims[2] = RESOLUTION_STEP * torch.export.Dim("height_32", **steps)
        dims[3] = RESOLUTION_STEP * torch.export.Dim("width_32", **steps)
    return (dims,) if dims else None


def export_program(model: nn.Module, batch: int, resolution: Resolution | int, dynamic_batch: bool,
                   dynamic_shape: bool = False):
    """`torch.export` of `model` (in eval mode; a quantized graph module as it is) on an NCHW
    image input; batch, and height and width, dynamic if asked."""
    if not isinstance(model, torch.fx.GraphModule):
        model = model.eval()
    with torch.no_grad():
        return torch.export.export(model, (example_input(batch, resolution, dynamic_batch),),
                                   dynamic_shapes=_dynamic_shapes(dynamic_batch, dynamic_shape))
