"""The deploy-form rewrite: an ordered list of named, pure passes.

Every pass deep-copies its input and returns the rewritten copy; the input is never
mutated. Passes run in the order of `PASSES`; any of them can be switched off by name.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from casvit_deploy.errors import UsageError
from casvit_deploy.model.casvit import AdditiveBlock, AdditiveTokenMixer, CASViT, Embedding, FlattenMean
from casvit_deploy.rewrite.fusion import (
    average_linears,
    bn_affine,
    fold_bn_into_linear,
    fold_bn_into_pointwise,
    fuse_conv_bn,
    split_conv_outputs,
)
from casvit_deploy.rewrite.modules import ChannelAffine, QKVConvs, SpatialMean
from casvit_deploy.settings import Form


def _pure(fn: Callable[[nn.Module], None]) -> Callable[[nn.Module], nn.Module]:
    """Turn an in-place rewrite of a private copy into a pure function of the model."""

    @torch.no_grad()
    def apply(model: nn.Module) -> nn.Module:
        model = copy.deepcopy(model)
        fn(model)
        return model

    apply.__doc__, apply.__name__ = fn.__doc__, fn.__name__
    return apply


def _fold_sequential(seq: nn.Sequential) -> nn.Sequential:
    layers, children = [], list(seq)
    for i, layer in enumerate(children):
        if isinstance(layer, nn.BatchNorm2d) and layers and isinstance(layers[-1], nn.Conv2d):
            layers[-1] = fuse_conv_bn(layers[-1], layer)
        else:
            layers.append(layer)
    return nn.Sequential(*layers)


def _replace_children(model: nn.Module, kind: type, make: Callable[[nn.Module], nn.Module]) -> None:
    for parent in reversed(list(model.modules())):  # descendants before ancestors
        for name, child in list(parent.named_children()):
            if type(child) is kind:
                setattr(parent, name, make(child))


@_pure
def fold_conv_bn(model: nn.Module) -> None:
    """BN(conv(x)) = conv'(x) for every conv→BN pair: stem, stage embeddings, spatial
    gates, LocalIntegration. Precondition: eval mode (BN uses running statistics)."""
    _replace_children(model, nn.Sequential, _fold_sequential)
    for emb in model.modules():
        if isinstance(emb, Embedding) and isinstance(emb.norm, nn.BatchNorm2d):
            emb.proj, emb.norm = fuse_conv_bn(emb.proj, emb.norm), None


@_pure
def fold_prenorm_bn(model: nn.Module) -> None:
    """attn(BN1(x)) with qkv a 1x1 conv = attn'(x), and likewise BN2 into the MLP's fc1:
    qkv(BN(x)) = qkv'(x) with W' = W·s[i], b' = b + W·t. Preconditions: eval mode; qkv and
    fc1 are 1x1 ungrouped unpadded convs (checked)."""
    for block in model.modules():
        if not isinstance(block, AdditiveBlock):
            continue
        if isinstance(block.norm1, nn.BatchNorm2d) and isinstance(block.attn.qkv, nn.Conv2d):
            block.attn.qkv, block.norm1 = fold_bn_into_pointwise(block.norm1, block.attn.qkv), None
        if isinstance(block.norm2, nn.BatchNorm2d):
            block.mlp.fc1, block.norm2 = fold_bn_into_pointwise(block.norm2, block.mlp.fc1), None


@_pure
def fold_head_norm(model: nn.Module) -> None:
    """head(mean_hw(BN(x))) = head'(mean_hw(x)): the mean commutes with the per-channel
    affine BN. Applied to `dist_head` too. Preconditions: eval mode; classifier form."""
    if isinstance(model, CASViT) and isinstance(getattr(model, "norm", None), nn.BatchNorm2d):
        model.head = fold_bn_into_linear(model.norm, model.head)
        if model.dist_head is not None:
            model.dist_head = fold_bn_into_linear(model.norm, model.dist_head)
        model.norm = None


@_pure
def fold_output_norms(model: nn.Module) -> None:
    """norm_i(x) = x·s + t per channel, (s, t) the BN's affine form, for a backbone's four
    output norms (norm0/2/4/6): nothing inside the backbone consumes a normed output (the
    next stage takes the un-normed x), so no linear op follows to fold them into; each
    becomes one scale-and-shift. Preconditions: eval mode; backbone form."""
    if isinstance(model, CASViT) and model.fork_feat:
        for index in model.out_indices:
            norm = getattr(model, f"norm{index}")
            if isinstance(norm, nn.BatchNorm2d):
                setattr(model, f"norm{index}", ChannelAffine(*bn_affine(norm)))


@_pure
def merge_heads(model: nn.Module) -> None:
    """(head(x) + dist_head(x)) / 2 = head'(x) with averaged weights and biases.
    Precondition: eval mode (training mode returns both heads)."""
    if isinstance(model, CASViT) and getattr(model, "dist_head", None) is not None:
        model.head, model.dist_head = average_linears(model.head, model.dist_head), None


@_pure
def split_qkv(model: nn.Module) -> None:
    """qkv(x).chunk(3, 1) = (q(x), k(x), v(x)) with q, k, v the row slices of qkv's weight:
    three 1x1 convs, no slicing of a fused tensor at run time."""
    for attn in model.modules():
        if isinstance(attn, AdditiveTokenMixer) and isinstance(attn.qkv, nn.Conv2d):
            attn.qkv = QKVConvs(*split_conv_outputs(attn.qkv, 3))


@_pure
def pool_to_mean(model: nn.Module) -> None:
    """AdaptiveAvgPool2d((1, 1))(x) = x.mean((2, 3), keepdim=True) and
    x.flatten(2).mean(-1) = x.mean((2, 3)): one reduce op either way."""
    _replace_children(model, nn.AdaptiveAvgPool2d, lambda pool: SpatialMean(keepdim=True)
                      if tuple(pool.output_size) in ((1, 1),) else pool)
    _replace_children(model, FlattenMean, lambda _: SpatialMean(keepdim=False))


def _drop_noop_layers(seq: nn.Sequential) -> nn.Sequential:
    return nn.Sequential(*(m for m in seq if not isinstance(m, (nn.Dropout, nn.Identity))))


@_pure
def drop_noops(model: nn.Module) -> None:
    """Dropout and drop-path are identities in eval mode; Identity layers are removed.
    Precondition: eval mode."""
    _replace_children(model, nn.Sequential, _drop_noop_layers)
    for module in model.modules():
        for name in ("drop", "proj_drop", "drop_path"):
            if isinstance(getattr(module, name, None), (nn.Dropout, nn.Identity)):
                setattr(module, name, None)


@_pure
def no_inplace(model: nn.Module) -> None:
    """ReLU(inplace=True) and ReLU() compute the same values; exporters and graph
    rewriters handle the out-of-place op more simply."""
    _replace_children(model, nn.ReLU, lambda _: nn.ReLU())


@dataclass(frozen=True)
class Pass:
    name: str
    apply: Callable[[nn.Module], nn.Module]

    @property
    def summary(self) -> str:
        """The identity the pass relies on: its docstring's first sentence."""
        text = " ".join((self.apply.__doc__ or "").split())
        return text.split(". ")[0].split(": ")[0].rstrip(".")


PASSES: tuple[Pass, ...] = tuple(
    Pass(fn.__name__, fn)
    for fn in (fold_conv_bn, fold_prenorm_bn, fold_head_norm, fold_output_norms, merge_heads,
               split_qkv, pool_to_mean, drop_noops, no_inplace)
)
PASS_NAMES = tuple(p.name for p in PASSES)


def check_pass_names(names: Iterable[str]) -> None:
    unknown = [n for n in names if n not in PASS_NAMES]
    if unknown:
        raise UsageError(f"unknown pass {unknown[0]!r}: choose from {', '.join(PASS_NAMES)}")


def to_deploy(model: nn.Module, disable: Iterable[str] = ()) -> tuple[nn.Module, list[str]]:
    """The deploy form of an eval-mode model and the names of the passes applied."""
    disable = set(disable)
    check_pass_names(disable)
    if model.training:
        raise UsageError("the deploy rewrite needs an eval-mode model (call model.eval())")
    applied = []
    for p in PASSES:
        if p.name not in disable:
            model = p.apply(model)
            applied.append(p.name)
    return model, applied


def deploy_form(model: nn.Module, form: Form = Form.DEPLOY, disable: Iterable[str] = ()) -> tuple[nn.Module, list[str]]:
    """The model a command exports or runs: the deploy form (and the passes applied), or
    the upstream `model` itself with no passes."""
    if form is Form.UPSTREAM:
        return model, []
    return to_deploy(model, disable)
