"""Block names: how parity localization, exporters and runners name a model's parts."""

from __future__ import annotations

from torch import nn

FINAL_OUTPUT = "head"


def block_names(model: nn.Module) -> list[str]:
    """Block-granularity module paths in execution order: "patch_embed", each stage's
    blocks ("network.0.0", ...), the embeddings between stages ("network.1", ...), and
    "head" for a classifier's final output."""
    names = ["patch_embed"]
    for i, part in enumerate(model.network):
        if isinstance(part, nn.Sequential):
            names += [f"network.{i}.{j}" for j in range(len(part))]
        else:
            names.append(f"network.{i}")
    if not getattr(model, "fork_feat", False):
        names.append(FINAL_OUTPUT)
    return names
