"""The `torch.export` step shared by every format, and where each block's output lives in it."""

from __future__ import annotations

import operator

import torch
from torch import nn

from casvit_deploy.model.blocks import (  # noqa: F401  (exporters import them here)
    FINAL_OUTPUT, block_names, output_names,
)
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
    """`torch.export` of `model` on an NCHW image input; batch, and height and width, dynamic if asked."""
    with torch.no_grad():
        return torch.export.export(model.eval(), (example_input(batch, resolution, dynamic_batch),),
                                   dynamic_shapes=_dynamic_shapes(dynamic_batch, dynamic_shape))


def _module_paths(node) -> set[str]:
    return {path for path, _ in (node.meta.get("nn_module_stack") or {}).values()}


def _value_name(node) -> str:
    """The node's name, or for `getitem` on a multi-output op (eval-mode BN) the op's own
    name, which is what ONNX and MIL programs keep."""
    if node.target is operator.getitem and hasattr(node.args[0], "name"):
        return node.args[0].name
    return node.name


def block_outputs(program, model: nn.Module) -> dict[str, str]:
    """Block name -> FX node producing its output: the last node inside that module;
    "head" is the node that produces the program's output (after any head averaging). A
    block whose output is a program output (a backbone's output norm) maps to that
    output's name, which is what the artifact calls it."""
    last: dict[str, object] = {}
    wanted = set(block_names(model)) - {FINAL_OUTPUT}
    output = None
    for node in program.graph.nodes:
        if node.op == "output":
            output = node
        elif node.op == "call_function":
            for path in _module_paths(node) & wanted:
                last[path] = node
    args = list(output.args[0]) if output is not None else []
    named = dict(zip(map(id, args), output_names(model))) if len(args) == len(output_names(model)) else {}
    result = {name: named.get(id(last[name])) or _value_name(last[name]) for name in block_names(model)
              if name in last}
    if len(args) == 1 and hasattr(args[0], "name"):
        result[FINAL_OUTPUT] = args[0].name
    return result
