"""The `torch.export` step shared by every format (model/program.py), and where each
block's output lives in it."""

from __future__ import annotations

import operator

import torch
from torch import nn

from casvit_deploy.model.blocks import (  # noqa: F401  (exporters import them here)
    FINAL_OUTPUT,
    block_names,
    output_names,
)
from casvit_deploy.model.program import MAX_DYNAMIC_BATCH, example_input, export_program  # noqa: F401  (likewise)


def append_softmax(program) -> None:
    """End `program` (in place) in softmax over its single output's last dimension, as a
    classifier's probabilities; every other node, and its name, stays as it was."""
    graph = program.graph_module.graph
    output = next(n for n in graph.nodes if n.op == "output")
    (logits,) = output.args[0]
    softmax = torch.ops.aten._softmax.default
    with graph.inserting_before(output):
        probabilities = graph.call_function(softmax, (logits, -1, False))
    probabilities.meta["val"] = softmax(logits.meta["val"], -1, False)
    output.args = ((probabilities,),)
    program.graph_signature.output_specs[0].arg.name = probabilities.name
    program.graph_module.recompile()


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
