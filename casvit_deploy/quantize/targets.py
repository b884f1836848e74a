"""What `--keep-float` can name, and which graph nodes each name keeps float.

A target is a block (as parity's per-block table names them: "patch_embed",
"network.0.0", ..., "head") or an op kind ("gates", "residual-adds", ...). Quantizers
describe each graph node by where it came from (`NodeOrigin`: the module paths and
classes of the exporter's metadata, and the op) and leave it float when a target covers it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from torch import nn

from casvit_deploy.errors import UsageError
from casvit_deploy.model.blocks import FINAL_OUTPUT, block_names

HEAD_MODULES = ("head", "dist_head", "norm", "pool")
RESIDUAL_ADDS = "residual-adds"
DEPTHWISE = "depthwise"
MULTIPLIES = "multiplies"


@dataclass(frozen=True)
class NodeOrigin:
    """Where a graph node came from: module paths and class names, outermost first, its op
    ("add", "conv2d", "mul", ...) and, for a convolution, its groups."""

    paths: tuple[str, ...]
    classes: tuple[str, ...]
    op: str
    groups: int = 1  # a convolution's groups: more than 1 for the depthwise ones

    @property
    def innermost_class(self) -> str:
        return self.classes[-1].rsplit(".", 1)[-1] if self.classes else ""

    def inside(self, module_path: str) -> bool:
        return any(p == module_path or p.startswith(module_path + ".") for p in self.paths)

    def inside_class(self, names: tuple[str, ...]) -> bool:
        return any(c.rsplit(".", 1)[-1] in names for c in self.classes)


def _in_classes(*names: str) -> Callable[[NodeOrigin], bool]:
    return lambda origin: origin.inside_class(names)


KINDS: dict[str, tuple[str, Callable[[NodeOrigin], bool]]] = {
    "gates": ("the sigmoid gates (spatial and channel) and their multiplies",
              _in_classes("SpatialOperation", "ChannelOperation")),
    "spatial-gates": ("the spatial gates", _in_classes("SpatialOperation")),
    "channel-gates": ("the channel gates", _in_classes("ChannelOperation")),
    "mixers": ("the token mixers (CATM)", _in_classes("AdditiveTokenMixer")),
    "mlps": ("the MLPs", _in_classes("Mlp")),
    "local": ("the local integration branches", _in_classes("LocalIntegration")),
    RESIDUAL_ADDS: ("the residual adds: the stream between blocks stays float",
                    lambda o: o.op == "add" and o.innermost_class == "AdditiveBlock"),
    DEPTHWISE: ("the depthwise 3x3 convolutions", lambda o: o.op == "conv2d" and o.groups > 1),
    MULTIPLIES: ("the gate and token-mixer multiplies",
                 lambda o: o.op == "mul" and o.innermost_class in ("SpatialOperation", "ChannelOperation",
                                                                   "AdditiveTokenMixer")),
}


def describe_targets(model: nn.Module) -> str:
    return f"blocks {', '.join(block_names(model))}; or op kinds {', '.join(KINDS)}"


def check_targets(model: nn.Module, targets: Iterable[str]) -> tuple[str, ...]:
    """`targets` in order without repeats; UsageError naming one that is neither a block nor a kind."""
    known = set(block_names(model)) | set(KINDS)
    targets = tuple(dict.fromkeys(t.strip() for t in targets if t.strip()))
    for target in targets:
        if target not in known:
            raise UsageError(f"--keep-float {target!r}: not a block or op kind of this model; choose from "
                             f"{describe_targets(model)}")
    return targets


def covers(target: str, origin: NodeOrigin) -> bool:
    """Whether `target` keeps the node of `origin` float."""
    if target in KINDS:
        return KINDS[target][1](origin)
    if target == FINAL_OUTPUT:
        return any(origin.inside(m) for m in HEAD_MODULES)
    return origin.inside(target)


def keeps_float(targets: Iterable[str]) -> Callable[[NodeOrigin], bool]:
    """A predicate: is the node of this origin kept float by any of `targets`?"""
    targets = tuple(targets)
    return lambda origin: any(covers(t, origin) for t in targets)
