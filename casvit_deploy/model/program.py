"""The `torch.export` step shared by every format (and by parity, which rebuilds the
program an int8 artifact was quantized from)."""

from __future__ import annotations

import torch
from torch import nn

MAX_DYNAMIC_BATCH = 1024


def example_input(batch: int, resolution: int, dynamic_batch: bool = False) -> torch.Tensor:
    """A seeded float32 NCHW example; batch >= 2 when dynamic (size 1 would be specialized)."""
    n = max(batch, 2) if dynamic_batch else batch
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, resolution, resolution, generator=gen)


def export_program(model: nn.Module, batch: int, resolution: int, dynamic_batch: bool):
    """`torch.export` of `model` (in eval mode; a quantized graph module as it is) on an NCHW
    image input, batch dimension dynamic if asked."""
    shapes = None
    if dynamic_batch:
        shapes = ({0: torch.export.Dim("batch", min=1, max=MAX_DYNAMIC_BATCH)},)
    if not isinstance(model, torch.fx.GraphModule):
        model = model.eval()
    with torch.no_grad():
        return torch.export.export(model, (example_input(batch, resolution, dynamic_batch),), dynamic_shapes=shapes)
