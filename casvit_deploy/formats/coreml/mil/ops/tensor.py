"""Shape and type ops: reshape, split, reduce_mean, cast."""

from __future__ import annotations

import torch

from casvit_deploy.formats.coreml.mil.precision import FLOAT_DTYPES
from casvit_deploy.formats.coreml.mil.registry import UnsupportedOpError, register


@register("reshape")
def reshape(x, shape):
    """`shape` may hold one -1 (inferred) and, when it has x's rank, 0 (copy x's dim)."""
    if len(shape) == x.dim():
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape([int(s) for s in shape])


def _split_sizes(length: int, num_splits, split_sizes) -> list[int]:
    if split_sizes is not None:
        return [int(s) for s in split_sizes]
    if not num_splits or length % num_splits:
        raise UnsupportedOpError(f"split of length {length} into {num_splits} equal parts is not defined")
    return [length // num_splits] * num_splits


@register("split")
def split(x, axis, num_splits=None, split_sizes=None):
    """Equal parts (`num_splits`) or the given `split_sizes` along `axis`."""
    return tuple(torch.split(x, _split_sizes(x.shape[axis], num_splits, split_sizes), dim=axis))


@register("reduce_mean")
def reduce_mean(x, axes=None, keep_dims=False):
    """Mean over `axes` (all axes when None), keeping reduced axes as size 1 if `keep_dims`."""
    dims = list(range(x.dim())) if axes is None else [int(a) for a in axes]
    return torch.mean(x, dim=dims, keepdim=bool(keep_dims))


@register("cast")
def cast(x, dtype):
    """Float to float: the rounding itself happens when the result is held in `dtype`."""
    if dtype not in FLOAT_DTYPES or not x.is_floating_point():
        raise UnsupportedOpError(f"cast to {dtype!r} is not implemented (only fp16/fp32 floats)")
    return x.clone()
