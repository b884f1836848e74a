"""Compressed programs: the constexpr_* weight decompression ops (iOS16 affine dequantize
and packed LUT, iOS18 blockwise shift/scale and grouped LUT), constexpr_cast, and the
activation quantize/dequantize pair (iOS17).

A constexpr op has constant inputs only; the interpreter evaluates it once, when the
program is compiled (interpreter.py), and holds the result in the op's declared dtype.
"""

from __future__ import annotations

import math

import torch

from casvit_deploy.formats.coreml.mil.registry import UnsupportedOpError, register

INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}


def along(vector: torch.Tensor, axis: int | None, rank: int) -> torch.Tensor:
    """A scalar as is; a vector shaped to broadcast along `axis` of a rank-`rank` tensor."""
    if vector.dim() == 0 or vector.numel() == 1 and axis is None:
        return vector.reshape(())
    if axis is None:
        raise UnsupportedOpError("a per-channel scale or zero point needs an axis")
    shape = [1] * rank
    shape[axis % rank] = vector.numel()
    return vector.reshape(shape)


def blockwise(param: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """`param` repeated block by block to `shape` (each dim of `shape` a multiple of `param`'s)."""
    for dim, (size, blocks) in enumerate(zip(shape, param.shape)):
        if size % blocks:
            raise UnsupportedOpError(f"dimension {dim} of size {size} is not divisible into {blocks} blocks")
        param = param.repeat_interleave(size // blocks, dim=dim)
    return param


@register("constexpr_affine_dequantize", ("quantized_data", "zero_point", "scale"))
def constexpr_affine_dequantize(quantized_data, zero_point, scale, axis):
    """scale · (quantized_data - zero_point), scale and zero point broadcast along `axis`."""
    rank = quantized_data.dim()
    return (quantized_data.float() - along(zero_point.float(), axis, rank)) * along(scale, axis, rank)


@register("constexpr_blockwise_shift_scale", ("data", "scale", "offset"))
def constexpr_blockwise_shift_scale(data, scale, offset=None):
    """scale[b] · (data - offset[b]) where b is the block of each element (block size
    along each dim = data.shape / scale.shape)."""
    shifted = data.float() if offset is None else data.float() - blockwise(offset.float(), data.shape)
    return shifted * blockwise(scale, data.shape)


def unpack_indices(packed: torch.Tensor, nbits: int, count: int) -> torch.Tensor:
    """`count` indices of `nbits` bits packed into bytes, least significant bit first."""
    bits = (packed.to(torch.int64).unsqueeze(-1) >> torch.arange(8)) & 1   # byte -> its 8 bits, LSB first
    bits = bits.reshape(-1)[: count * nbits].reshape(count, nbits)
    return (bits << torch.arange(nbits)).sum(dim=1)


def _lut_ios16(indices, lut, shape):
    nbits = int(math.log2(lut.numel()))
    if 2 ** nbits != lut.numel():
        raise UnsupportedOpError(f"a lookup table of {lut.numel()} entries is not 2^n entries")
    count = math.prod(int(s) for s in shape)
    return lut.reshape(-1)[unpack_indices(indices, nbits, count)].reshape([int(s) for s in shape])


def _lut_grouped(indices, lut):
    """lut [G_0, ..., G_{K-1}, entries, 1]: each element reads the table of its group."""
    if lut.shape[-1] != 1:
        raise UnsupportedOpError(f"vector palettization (vector size {lut.shape[-1]}) is not implemented")
    groups = []
    for dim, (size, count) in enumerate(zip(indices.shape, lut.shape[:-2])):
        if size % count:
            raise UnsupportedOpError(f"dimension {dim} of size {size} is not divisible into {count} LUT groups")
        view = [1] * indices.dim()
        view[dim] = size
        groups.append((torch.arange(size) // (size // count)).reshape(view))
    return lut[..., 0][(*groups, indices.long())]


@register("constexpr_lut_to_dense", ("indices", "lut"))
def constexpr_lut_to_dense(indices, lut, shape=None, vector_axis=None):
    """Each index replaced by its lookup-table entry. iOS16: `indices` packed (n bits each,
    LSB first), one table, output `shape`. iOS18: one index per output element and a table
    per group of elements (lut [groups per dim..., entries, vector size])."""
    if shape is not None:
        return _lut_ios16(indices, lut, shape)
    return _lut_grouped(indices, lut)


@register("constexpr_cast", ("source_val",))
def constexpr_cast(source_val, output_dtype):
    """A float16 constant as `output_dtype` (the value is held in that dtype)."""
    return source_val.clone()


def _check_dtype(output_dtype: str) -> tuple[int, int]:
    if output_dtype not in INT_RANGES:
        raise UnsupportedOpError(f"quantize to {output_dtype!r} is not one of {', '.join(INT_RANGES)}")
    return INT_RANGES[output_dtype]


@register("quantize", ("input", "scale", "zero_point"))
def quantize(input, scale, output_dtype, zero_point=None, axis=None):
    """clip(round(input / scale) + zero_point) to the range of `output_dtype` (ties to even)."""
    low, high = _check_dtype(output_dtype)
    rank = input.dim()
    q = torch.round(input / along(scale, axis, rank))
    if zero_point is not None:
        q = q + along(zero_point.float(), axis, rank)
    return q.clamp(low, high)


@register("dequantize", ("input", "scale", "zero_point"))
def dequantize(input, scale, zero_point=None, axis=None):
    """scale · (input - zero_point)."""
    rank = input.dim()
    x = input.float()
    if zero_point is not None:
        x = x - along(zero_point.float(), axis, rank)
    return x * along(scale, axis, rank)
