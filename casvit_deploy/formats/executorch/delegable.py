"""A graph identity that lets XNNPACK take the classifier's pooling.

XNNPACK delegates `mean` over (H, W) only with keepdim=True on 4-D input, so
mean(x, [2, 3]) becomes flatten(mean(x, [2, 3], keepdim=True), 1): the same values, and
the whole deploy-form graph lowers. The flatten is a static reshape when the batch is
fixed; with a dynamic batch it stays on portable kernels.
"""

from __future__ import annotations

import torch

aten = torch.ops.aten


def _is_spatial_mean(node) -> bool:
    if node.op != "call_function" or node.target != aten.mean.dim:
        return False
    x, dims = node.args[0], node.args[1]
    keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    rank = x.meta["val"].dim()
    return not keepdim and rank == 4 and sorted(d % rank for d in dims) == [2, 3] and not node.kwargs.get("dtype")


def keepdim_spatial_means(program):
    """Rewrite every keepdim=False spatial mean of `program` in place; returns how many."""
    graph, count = program.graph_module.graph, 0
    for node in [n for n in graph.nodes if _is_spatial_mean(n)]:
        x = node.args[0]
        with graph.inserting_before(node):
            mean = graph.call_function(aten.mean.dim, (x, [2, 3], True))
            flat = graph.call_function(aten.flatten.using_ints, (mean, 1))
        mean.meta = {**node.meta, "val": x.meta["val"].mean(dim=(2, 3), keepdim=True)}
        flat.meta = dict(node.meta)
        node.replace_all_uses_with(flat)
        graph.erase_node(node)
        count += 1
    program.graph_module.recompile()
    return count
