"""The compression ops of the MIL interpreter against hand-computed values and against
coremltools' own decompression (`materialized_val_inference` of each constexpr op)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from casvit_deploy.formats.coreml.mil import Interpreter, UnsupportedOpError  # noqa: E402
from casvit_deploy.formats.coreml.mil.ops.compression import unpack_indices  # noqa: E402


def run_const(build, opset):
    """Interpret a program that adds `build()` (a constexpr op with fp32 output) to a zero
    input: (the interpreter's value, coremltools' `materialized_val_inference` of the op)."""
    shape = mb.program(input_specs=[mb.TensorSpec(shape=(1,), dtype=types.fp32)], opset_version=opset)(
        lambda x: build()).functions["main"].outputs[0].shape
    captured = {}

    def body(x):
        captured["var"] = build()
        return mb.add(x=x, y=captured["var"])

    prog = mb.program(input_specs=[mb.TensorSpec(shape=shape, dtype=types.fp32)], opset_version=opset)(body)
    interp = Interpreter(prog)
    got = interp.run({"x": np.zeros(shape, np.float32)})[interp.outputs[0][0]]
    return got, captured["var"].op.materialized_val_inference()


def test_affine_dequantize_per_channel_by_hand():
    data = np.array([[0, 1, 2], [3, 4, 5]], np.uint8)
    got, theirs = run_const(lambda: mb.constexpr_affine_dequantize(
        quantized_data=data, zero_point=np.array([1, 2], np.uint8), scale=np.array([0.5, 2.0], np.float32),
        axis=0), ct.target.iOS16)
    want = np.array([[-0.5, 0.0, 0.5], [2.0, 4.0, 6.0]], np.float32)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(theirs, want)


def test_affine_dequantize_int8_matches_coremltools():
    rng = np.random.default_rng(0)
    data = rng.integers(-128, 128, (6, 4, 3, 3)).astype(np.int8)
    scale, zero = rng.uniform(0.01, 0.1, 4).astype(np.float32), rng.integers(-5, 5, 4).astype(np.int8)
    got, theirs = run_const(lambda: mb.constexpr_affine_dequantize(
        quantized_data=data, zero_point=zero, scale=scale, axis=1), ct.target.iOS16)
    np.testing.assert_allclose(got, theirs, rtol=1e-6)
    np.testing.assert_allclose(got[:, 2], (data[:, 2].astype(np.float32) - zero[2]) * scale[2], rtol=1e-6)


def test_blockwise_shift_scale_by_hand_and_per_block():
    data = np.array([[1, -2, 3, 4], [5, 6, -7, 8]], np.int8)
    scale = np.array([[0.5, 2.0]], np.float32)  # blocks of 2 x 2
    offset = np.array([[1, -1]], np.int8)
    got, theirs = run_const(lambda: mb.constexpr_blockwise_shift_scale(data=data, scale=scale, offset=offset),
                            ct.target.iOS18)
    want = np.array([[0.0, -1.5, 8.0, 10.0], [2.0, 2.5, -12.0, 18.0]], np.float32)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(theirs, want)


def test_blockwise_shift_scale_int4_without_offset_matches_coremltools():
    rng = np.random.default_rng(1)
    data = rng.integers(-8, 8, (8, 6, 1, 1)).astype(np.int8)
    scale = rng.uniform(0.01, 0.1, (8, 2, 1, 1)).astype(np.float32)
    got, theirs = run_const(lambda: mb.constexpr_blockwise_shift_scale(
        data=data.astype(types.np_int4_dtype), scale=scale), ct.target.iOS18)
    np.testing.assert_allclose(got, theirs, rtol=1e-6)


def test_unpack_indices_least_significant_bit_first():
    # 2-bit indices [0, 3, 2, 1, 3]: byte 0 = 01 10 11 00 (i3 i2 i1 i0), byte 1 = xx xx xx 11
    packed = torch.tensor([0b01101100, 0b00000011], dtype=torch.uint8)
    assert unpack_indices(packed, 2, 5).tolist() == [0, 3, 2, 1, 3]
    # 6-bit indices cross byte boundaries
    values = [5, 63, 0, 42]
    bits = "".join(format(v, "06b")[::-1] for v in values)  # LSB first
    packed = torch.tensor([int(bits[i:i + 8][::-1], 2) for i in range(0, 24, 8)], dtype=torch.uint8)
    assert unpack_indices(packed, 6, 4).tolist() == values


@pytest.mark.parametrize("nbits", [1, 2, 4, 6, 8])
def test_lut_to_dense_ios16_packed_matches_coremltools(nbits):
    rng = np.random.default_rng(nbits)
    shape = (5, 3, 3)
    count = int(np.prod(shape))
    indices = rng.integers(0, 2 ** nbits, count)
    bits = np.array([(i >> b) & 1 for i in indices for b in range(nbits)], np.uint8)
    packed = np.packbits(np.pad(bits, (0, -len(bits) % 8)), bitorder="little")
    lut = rng.standard_normal(2 ** nbits).astype(np.float32)
    got, theirs = run_const(lambda: mb.constexpr_lut_to_dense(
        indices=packed, lut=lut, shape=np.array(shape, np.uint32)), ct.target.iOS16)
    np.testing.assert_array_equal(got, lut[indices].reshape(shape))
    np.testing.assert_array_equal(theirs, got)


def test_lut_to_dense_ios18_per_group_by_hand():
    # two tables over axis 0 (rows 0-2 and 3-5), 2-bit indices
    indices = np.array([[2, 3], [3, 0], [1, 0], [3, 0], [2, 1], [0, 3]], np.uint8)
    lut = np.array([1.0, 5.0, 9.0, 13.0, 2.0, 10.0, 18.0, 26.0], np.float32).reshape(2, 1, 4, 1)
    got, theirs = run_const(lambda: mb.constexpr_lut_to_dense(
        indices=indices.astype(types.np_uint2_dtype), lut=lut), ct.target.iOS18)
    want = np.array([[9, 13], [13, 1], [5, 1], [26, 2], [18, 10], [2, 26]], np.float32)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(theirs, want)


def test_lut_to_dense_ios18_groups_on_two_axes_matches_coremltools():
    rng = np.random.default_rng(3)
    indices = rng.integers(0, 16, (8, 6, 3, 3)).astype(np.uint8)
    lut = rng.standard_normal((4, 2, 1, 1, 16, 1)).astype(np.float32)
    got, theirs = run_const(lambda: mb.constexpr_lut_to_dense(indices=indices.astype(types.np_uint4_dtype), lut=lut),
                            ct.target.iOS18)
    np.testing.assert_array_equal(got, theirs)
    assert got[5, 4, 1, 2] == lut[2, 1, 0, 0, indices[5, 4, 1, 2], 0]


def test_lut_vector_palettization_is_refused():
    from casvit_deploy.formats.coreml.mil.ops.compression import constexpr_lut_to_dense

    with pytest.raises(UnsupportedOpError, match="vector"):
        constexpr_lut_to_dense(torch.zeros(4, 2, dtype=torch.uint8), torch.zeros(1, 1, 2, 2), vector_axis=0)


def _run_dynamic(build, x, opset=ct.target.iOS17):
    prog = mb.program(input_specs=[mb.TensorSpec(shape=x.shape, dtype=types.fp32)], opset_version=opset)(build)
    interp = Interpreter(prog)
    return interp.run({name: x for name in interp.inputs})[interp.outputs[0][0]]


def test_quantize_rounds_half_to_even_and_clips():
    x = np.array([[-300.0, -2.5, -0.5, 0.5, 1.5, 2.5, 126.6, 300.0]], np.float32)
    got = _run_dynamic(lambda v: mb.quantize(input=v, scale=np.float32(1.0), output_dtype="int8"), x)
    assert got.dtype == np.int8
    assert got.tolist() == [[-128, -2, 0, 0, 2, 2, 127, 127]]
    got = _run_dynamic(lambda v: mb.quantize(input=v, scale=np.float32(2.0), zero_point=np.uint8(10),
                                             output_dtype="uint8"), x)
    assert got.dtype == np.uint8
    assert got.tolist() == [[0, 9, 10, 10, 11, 11, 73, 160]]


def test_quantize_dequantize_per_channel_matches_torch():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32) * 3
    scale = np.array([0.02, 0.05, 0.1], np.float32)
    zero = np.array([0, 3, -2], np.int8)

    def build(v):
        q = mb.quantize(input=v, scale=scale, zero_point=zero, axis=1, output_dtype="int8")
        return mb.dequantize(input=q, scale=scale, zero_point=zero, axis=1)

    got = _run_dynamic(build, x)
    t = torch.from_numpy(x)
    want = torch.fake_quantize_per_channel_affine(t, torch.from_numpy(scale), torch.from_numpy(zero).int(), 1,
                                                  -128, 127).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_quantize_to_other_dtypes_is_refused():
    from casvit_deploy.formats.coreml.mil.ops.compression import quantize

    with pytest.raises(UnsupportedOpError, match="int16"):
        quantize(torch.zeros(2), torch.tensor(1.0), "int16")


def test_constexpr_cast_fp16_to_fp32():
    weights = np.array([1.0, 2.0 ** -20, 65504.0], np.float16)
    got, theirs = run_const(lambda: mb.constexpr_cast(source_val=weights, output_dtype="fp32"), ct.target.iOS16)
    np.testing.assert_array_equal(got, weights.astype(np.float32))
    np.testing.assert_array_equal(theirs, got)


def test_constexpr_ops_are_evaluated_once_at_compile_time():
    prog = mb.program(input_specs=[mb.TensorSpec(shape=(2, 3), dtype=types.fp32)], opset_version=ct.target.iOS16)(
        lambda x: mb.add(x=x, y=mb.constexpr_affine_dequantize(
            quantized_data=np.ones((2, 3), np.int8), zero_point=np.int8(0), scale=np.float32(0.5), axis=0)))
    interp = Interpreter(prog)
    assert [s.op_type for s in interp.steps] == ["add"] and len(interp.constants) == 1
    out = interp.run({"x": np.zeros((2, 3), np.float32)})
    np.testing.assert_array_equal(out[interp.outputs[0][0]], np.full((2, 3), 0.5, np.float32))
