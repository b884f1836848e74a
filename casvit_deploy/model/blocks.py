"""Block and output names: how parity localization, exporters and runners name a model's parts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from casvit_deploy.settings import Resolution

if TYPE_CHECKING:  # torch is imported where a model is at hand, not where names are
    from torch import nn

FINAL_OUTPUT = "head"
CLASSIFIER_OUTPUT = "logits"
FEATURE_STRIDES = (4, 8, 16, 32)  # of the backbone's four outputs, one per stage


@dataclass(frozen=True)
class ModelOutput:
    """One output of a model: a classifier's logits (no stride), or a backbone feature map."""

    name: str
    channels: int
    stride: int | None = None

    def shape(self, batch: int | str, resolution: Resolution) -> tuple:
        """(N, classes), or NCHW at 1/stride of the input size (exact: sizes are multiples of 32)."""
        if self.stride is None:
            return (batch, self.channels)
        return (batch, self.channels, resolution.height // self.stride, resolution.width // self.stride)

    @property
    def layout(self) -> str:
        return "NC" if self.stride is None else "NCHW"


def model_outputs(model: nn.Module) -> tuple[ModelOutput, ...]:
    """The outputs in the order the model returns them: "logits", or for a backbone
    "feat_s4", "feat_s8", "feat_s16", "feat_s32" (stride and channels of each stage)."""
    if getattr(model, "fork_feat", False):
        return tuple(ModelOutput(f"feat_s{stride}", dim, stride)
                     for stride, dim in zip(FEATURE_STRIDES, model.variant.dims))
    return (ModelOutput(CLASSIFIER_OUTPUT, model.num_classes),)


def output_names(model: nn.Module) -> tuple[str, ...]:
    return tuple(o.name for o in model_outputs(model))


def block_names(model: nn.Module) -> list[str]:
    """Block-granularity module paths in execution order: "patch_embed", each stage's
    blocks ("network.0.0", ...), the embeddings between stages ("network.1", ...), and
    "head" for a classifier's final output; a backbone's output norms ("norm0", "norm2",
    ...) follow the stage they normalize."""
    from torch import nn

    names = ["patch_embed"]
    fork_feat = getattr(model, "fork_feat", False)
    for i, part in enumerate(model.network):
        if isinstance(part, nn.Sequential):
            names += [f"network.{i}.{j}" for j in range(len(part))]
        else:
            names.append(f"network.{i}")
        if fork_feat and i in model.out_indices:
            names.append(f"norm{i}")
    if not fork_feat:
        names.append(FINAL_OUTPUT)
    return names
