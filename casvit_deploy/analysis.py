"""Static facts about a model: parameter count, MACs per stage, and its op census."""

from __future__ import annotations

import operator
from collections import Counter

import torch
from torch import fx, nn

from casvit_deploy.model.casvit import FlattenMean
from casvit_deploy.rewrite.modules import SpatialMean
from casvit_deploy.settings import Resolution

_MODULE_OPS: dict[type, str] = {
    nn.Conv2d: "conv2d", nn.Linear: "linear", nn.BatchNorm2d: "batch_norm", nn.GELU: "gelu",
    nn.Sigmoid: "sigmoid", nn.AdaptiveAvgPool2d: "adaptive_avg_pool2d", nn.Dropout: "dropout",
    nn.Identity: "identity",
}
_FUNCTION_OPS = {operator.add: "add", operator.mul: "mul", operator.truediv: "div",
                 torch.add: "add", torch.mul: "mul"}
_LEAVES = (FlattenMean, SpatialMean)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, _LEAVES) or super().is_leaf_module(m, qualname)


def _module_op(module: nn.Module) -> str:
    if isinstance(module, nn.ReLU):
        return "relu_ (in-place)" if module.inplace else "relu"
    if isinstance(module, FlattenMean):
        return "flatten+mean"
    if isinstance(module, SpatialMean):
        return "mean"
    return _MODULE_OPS.get(type(module), type(module).__name__)


def op_census(model: nn.Module) -> Counter:
    """How many times each op runs in one forward pass (traced with torch.fx)."""
    graph = _Tracer().trace(model)
    modules = dict(model.named_modules())
    census: Counter = Counter()
    for node in graph.nodes:
        if node.op == "call_module":
            census[_module_op(modules[node.target])] += 1
        elif node.op == "call_function" and node.target is not operator.getitem:
            census[_FUNCTION_OPS.get(node.target, getattr(node.target, "__name__", str(node.target)))] += 1
        elif node.op == "call_method":
            census[node.target] += 1
    return census


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _layer_macs(module: nn.Module, out: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kernel = module.weight[0].numel()  # in_channels / groups · kh · kw
        return out.numel() * kernel
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


def _stage_of(name: str) -> str:
    if name.startswith("patch_embed"):
        return "stem"
    if name.startswith("network."):
        index = int(name.split(".")[1])
        return f"stage{(index + 1) // 2 + 1}"  # an embedding counts with the stage it feeds
    return "head"


@torch.no_grad()
def macs_per_stage(model: nn.Module, resolution: Resolution | int | str) -> dict[str, int]:
    """Multiply-accumulates of conv and linear layers per stage, batch 1, at `resolution`
    (224, "512x768" or a Resolution)."""
    totals: Counter = Counter()
    hooks = [
        m.register_forward_hook(lambda mod, _, out, name=name: totals.update({_stage_of(name): _layer_macs(mod, out)}))
        for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        param = next(model.parameters())
        model(torch.zeros(Resolution.parse(resolution).shape(1), dtype=param.dtype, device=param.device))
    finally:
        for h in hooks:
            h.remove()
    order = ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    return {k: totals[k] for k in order if k in totals}
