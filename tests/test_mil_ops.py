"""Every MIL op implementation against PyTorch, through tiny MIL programs built with coremltools."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same.")

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from casvit_deploy.formats.coreml.mil import OPS, Interpreter, UnsupportedOpError  # noqa: E402
from casvit_deploy.formats.coreml.mil.ops.nn import same_padding  # noqa: E402

FP32_TOL = dict(rtol=1e-5, atol=1e-5)


def rand(*shape, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def run(build, *inputs, fp16=False):
    """Run `build(*vars)` as a one-function MIL program on `inputs`; the op's output(s)."""
    specs = [mb.TensorSpec(shape=x.shape, dtype=types.fp32) for x in inputs]
    cast = (lambda v: mb.cast(x=v, dtype="fp16")) if fp16 else (lambda v: v)
    if len(inputs) == 1:
        prog = mb.program(input_specs=specs, opset_version=ct.target.iOS16)(lambda x: build(cast(x)))
    else:
        prog = mb.program(input_specs=specs, opset_version=ct.target.iOS16)(lambda x, y: build(cast(x), cast(y)))
    interp = Interpreter(prog)
    out = interp.run({name: x for name, x in zip(interp.inputs, inputs)})
    values = [out[name] for name, _ in interp.outputs]
    return values[0] if len(values) == 1 else values


def torch_ref(fn, *arrays):
    return fn(*(torch.from_numpy(a) for a in arrays)).numpy()


# conv ------------------------------------------------------------------------------------

@pytest.mark.parametrize("stride,dilation,groups,pad", [
    (1, 1, 1, (1, 1, 1, 1)), (2, 1, 1, (1, 1, 1, 1)), (2, 1, 1, (0, 1, 2, 0)),
    (1, 2, 1, (2, 2, 2, 2)), (1, 1, 6, (1, 1, 1, 1)), (2, 1, 3, (1, 0, 0, 1)), (1, 1, 1, (0, 0, 0, 0)),
])
def test_conv_custom_padding_strides_dilations_groups(stride, dilation, groups, pad):
    x, w, b = rand(2, 6, 11, 9), rand(12, 6 // groups, 3, 3, seed=1), rand(12, seed=2)
    got = run(lambda v: mb.conv(x=v, weight=w, bias=b, strides=[stride, stride], pad_type="custom",
                                pad=list(pad), dilations=[dilation, dilation], groups=groups), x)
    padded = F.pad(torch.from_numpy(x), [pad[2], pad[3], pad[0], pad[1]])
    want = F.conv2d(padded, torch.from_numpy(w), torch.from_numpy(b), stride, 0, dilation, groups).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, **FP32_TOL)


def test_conv_depthwise_groups_equal_channels_no_bias():
    x, w = rand(1, 7, 13, 13), rand(7, 1, 3, 3, seed=1)
    got = run(lambda v: mb.conv(x=v, weight=w, pad_type="custom", pad=[1, 1, 1, 1], groups=7), x)
    np.testing.assert_allclose(got, torch_ref(lambda a, k: F.conv2d(a, k, padding=1, groups=7), x, w), **FP32_TOL)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("stride,pad", [(1, (0, 0, 0, 0)), (2, (0, 0, 0, 0)), (1, (1, 0, 0, 1))])
def test_conv_pointwise(with_bias, stride, pad):
    """1x1 convs (a matrix product when stride 1 and unpadded) against torch's conv."""
    x, w, b = rand(2, 6, 5, 7), rand(9, 6, 1, 1, seed=1), rand(9, seed=2)
    kwargs = dict(bias=b) if with_bias else {}
    got = run(lambda v: mb.conv(x=v, weight=w, strides=[stride, stride], pad_type="custom", pad=list(pad),
                                **kwargs), x)
    padded = F.pad(torch.from_numpy(x), [pad[2], pad[3], pad[0], pad[1]])
    want = F.conv2d(padded, torch.from_numpy(w), torch.from_numpy(b) if with_bias else None, stride).numpy()
    np.testing.assert_allclose(got, want, **FP32_TOL)


def test_conv_valid_padding():
    x, w = rand(1, 4, 10, 7), rand(5, 4, 3, 2, seed=1)
    got = run(lambda v: mb.conv(x=v, weight=w, pad_type="valid", strides=[2, 1]), x)
    np.testing.assert_allclose(got, torch_ref(lambda a, k: F.conv2d(a, k, stride=(2, 1)), x, w), **FP32_TOL)


@pytest.mark.parametrize("kernel", [3, 4])
def test_conv_same_stride1_matches_torch_same(kernel):
    """torch's padding='same' puts an odd extra element after, as MIL 'same' does."""
    x, w = rand(1, 3, 9, 8), rand(4, 3, kernel, kernel, seed=1)
    got = run(lambda v: mb.conv(x=v, weight=w, pad_type="same"), x)
    np.testing.assert_allclose(got, torch_ref(lambda a, k: F.conv2d(a, k, padding="same"), x, w), **FP32_TOL)


@pytest.mark.parametrize("pad_type", ["same", "same_lower"])
@pytest.mark.parametrize("size,kernel,stride,dilation", [(9, 3, 2, 1), (10, 4, 2, 1), (11, 3, 3, 2), (8, 2, 2, 1)])
def test_conv_same_with_stride(pad_type, size, kernel, stride, dilation):
    """Output size ceil(size/stride) (coremltools' own shape inference agrees), values equal
    to an explicitly padded torch conv."""
    x, w = rand(1, 2, size, size + 1), rand(3, 2, kernel, kernel, seed=1)
    got = run(lambda v: mb.conv(x=v, weight=w, pad_type=pad_type, strides=[stride, stride],
                                dilations=[dilation, dilation]), x)
    pads = [same_padding(s, kernel, stride, dilation, pad_type == "same_lower") for s in x.shape[2:]]
    padded = F.pad(torch.from_numpy(x), [*pads[1], *pads[0]])
    want = F.conv2d(padded, torch.from_numpy(w), stride=stride, dilation=dilation).numpy()
    assert got.shape[2:] == tuple(-(-s // stride) for s in x.shape[2:])
    np.testing.assert_allclose(got, want, **FP32_TOL)


def test_same_padding_puts_odd_element_after_or_before():
    assert same_padding(10, 4, 1, 1, lower=False) == (1, 2)
    assert same_padding(10, 4, 1, 1, lower=True) == (2, 1)
    assert same_padding(9, 3, 2, 1, lower=False) == (1, 1)
    assert same_padding(5, 1, 1, 1, lower=False) == (0, 0)


def test_conv1d():
    x, w = rand(1, 3, 17), rand(4, 3, 5, seed=1)
    got = run(lambda v: mb.conv(x=v, weight=w, pad_type="custom", pad=[2, 1], strides=[2]), x)
    want = torch_ref(lambda a, k: F.conv1d(F.pad(a, [2, 1]), k, stride=2), x, w)
    np.testing.assert_allclose(got, want, **FP32_TOL)


# linear, batch_norm -----------------------------------------------------------------------

@pytest.mark.parametrize("with_bias", [True, False])
def test_linear(with_bias):
    x, w, b = rand(3, 20), rand(7, 20, seed=1), rand(7, seed=2)
    kwargs = dict(bias=b) if with_bias else {}
    got = run(lambda v: mb.linear(x=v, weight=w, **kwargs), x)
    want = torch_ref(lambda a, k, c: F.linear(a, k, c if with_bias else None), x, w, b)
    np.testing.assert_allclose(got, want, **FP32_TOL)


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(affine):
    x = rand(2, 5, 6, 7)
    mean, var, gamma, beta = rand(5, seed=1), 0.5 + np.abs(rand(5, seed=2)), rand(5, seed=3), rand(5, seed=4)
    kwargs = dict(gamma=gamma, beta=beta) if affine else {}
    got = run(lambda v: mb.batch_norm(x=v, mean=mean, variance=var, epsilon=1e-3, **kwargs), x)
    want = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3)
    if affine:
        want = want * gamma[:, None, None] + beta[:, None, None]
    np.testing.assert_allclose(got, want, **FP32_TOL)


# activations --------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,ref", [
    ("EXACT", lambda t: F.gelu(t)),
    ("TANH_APPROXIMATION", lambda t: F.gelu(t, approximate="tanh")),
    ("SIGMOID_APPROXIMATION", lambda t: t * torch.sigmoid(1.702 * t)),
])
def test_gelu_modes(mode, ref):
    x = rand(4, 50, scale=3.0)
    got = run(lambda v: mb.gelu(x=v, mode=mode), x)
    np.testing.assert_allclose(got, torch_ref(ref, x), **FP32_TOL)


def test_gelu_modes_differ():
    """The three modes are distinguishable at this tolerance, so the tests above bite."""
    x = rand(4, 50, scale=3.0)
    outs = [run(lambda v, m=m: mb.gelu(x=v, mode=m), x) for m in ("EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION")]
    assert np.abs(outs[0] - outs[1]).max() > 1e-5 and np.abs(outs[0] - outs[2]).max() > 1e-3


@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
def test_softmax(axis):
    x = rand(2, 5, 7, scale=5.0)
    got = run(lambda v: mb.softmax(x=v, axis=axis), x)
    np.testing.assert_allclose(got, torch_ref(lambda t: torch.softmax(t, dim=axis), x), **FP32_TOL)
    np.testing.assert_allclose(got.sum(axis=axis), 1.0, atol=1e-6)


def test_softmax_of_large_logits_is_finite():
    """exp(1000) overflows float32; softmax must subtract the maximum first."""
    x = np.array([[1000.0, 999.0, -1000.0]], np.float32)
    got = run(lambda v: mb.softmax(x=v, axis=-1), x)
    e = np.exp(-1.0)
    np.testing.assert_allclose(got, [[1 / (1 + e), e / (1 + e), 0.0]], rtol=1e-6, atol=1e-30)


def test_softmax_fp16_holds_rounded_probabilities():
    x = rand(3, 10, scale=3.0)
    got = run(lambda v: mb.softmax(x=v, axis=-1), x, fp16=True)
    assert got.dtype == np.float16
    want = as_fp16(torch_ref(lambda t: torch.softmax(t, dim=-1), as_fp16(x)))
    np.testing.assert_array_equal(got.astype(np.float32), want)


def test_classify_gives_top_label_index_and_probabilities():
    """`classify` (a `--labels` export's last op): the label as an index into `classes`
    (the top probability) and the probabilities unchanged, in class order."""
    from coremltools.converters.mil.mil import mil_list

    classes = ["cat", "dog", "emu", "fox"]

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4), dtype=types.fp32)], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.classify(probabilities=mb.softmax(x=x, axis=-1), classes=mb.const(val=mil_list(classes)))

    for seed in range(5):
        x = rand(1, 4, seed=seed, scale=3.0)
        interp = Interpreter(prog)
        label, probabilities = (interp.run({"x": x})[name] for name, _ in interp.outputs)
        want = torch_ref(lambda t: torch.softmax(t, dim=-1), x)
        assert label.dtype == np.int64 and label.tolist() == [int(want.argmax())]
        np.testing.assert_allclose(probabilities, want, **FP32_TOL)


@pytest.mark.parametrize("op,ref", [("relu", torch.relu), ("sigmoid", torch.sigmoid)])
def test_unary(op, ref):
    x = rand(3, 4, 5, scale=4.0)
    got = run(lambda v: getattr(mb, op)(x=v), x)
    np.testing.assert_allclose(got, torch_ref(ref, x), **FP32_TOL)


# elementwise broadcasting -------------------------------------------------------------------

@pytest.mark.parametrize("op,ref", [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                                    ("real_div", np.divide)])
@pytest.mark.parametrize("yshape", [(2, 3, 4, 5), (1, 3, 1, 1), (5,), (2, 1, 4, 1)])
def test_binary_broadcasting(op, ref, yshape):
    x, y = rand(2, 3, 4, 5), rand(*yshape, seed=1) + (3.0 if op == "real_div" else 0.0)
    got = run(lambda a, b: getattr(mb, op)(x=a, y=b), x, y)
    np.testing.assert_allclose(got, ref(x, y), **FP32_TOL)


def test_binary_with_constant_operand():
    x, scale = rand(1, 3, 4, 4), np.float32(0.25)
    got = run(lambda a: mb.add(x=mb.mul(x=a, y=scale), y=np.array([1.0, 2.0, 3.0], np.float32).reshape(1, 3, 1, 1)), x)
    np.testing.assert_allclose(got, x * 0.25 + np.array([1, 2, 3]).reshape(1, 3, 1, 1), **FP32_TOL)


# shape and type ops -------------------------------------------------------------------------

@pytest.mark.parametrize("axes,keep_dims", [([2, 3], True), ([2, 3], False), ([-1], False), ([1], True), (None, False)])
def test_reduce_mean(axes, keep_dims):
    x = rand(2, 3, 5, 7)
    got = run(lambda v: mb.reduce_mean(x=v, axes=axes, keep_dims=keep_dims), x)
    want = x.mean(axis=None if axes is None else tuple(axes), keepdims=keep_dims)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, **FP32_TOL)


@pytest.mark.parametrize("kwargs,sizes", [(dict(num_splits=3), [4, 4, 4]), (dict(split_sizes=[2, 7, 3]), [2, 7, 3])])
@pytest.mark.parametrize("axis", [1, -3])
def test_split(kwargs, sizes, axis):
    x = rand(2, 12, 3, 3)
    got = run(lambda v: mb.split(x=v, axis=axis, **kwargs), x)
    want = np.split(x, np.cumsum(sizes)[:-1], axis=1)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("shape,want", [([2, -1], (2, 105)), ([0, 0, 7, -1], (2, 3, 7, 5)), ([1, 2, 3, 5, 7], (1, 2, 3, 5, 7))])
def test_reshape(shape, want):
    x = rand(2, 3, 5, 7)
    got = run(lambda v: mb.reshape(x=v, shape=shape), x)
    np.testing.assert_array_equal(got, x.reshape(want))


# fp16 emulation ------------------------------------------------------------------------------

def as_fp16(a):
    return a.astype(np.float16).astype(np.float32)


def test_fp16_values_rounded_at_every_op_boundary():
    """Each op computes from float16 values and its result is rounded to float16 again."""
    x, w = rand(1, 8, 9, 9, scale=2.0), rand(8, 8, 3, 3, seed=1)
    got = run(lambda v: mb.gelu(x=mb.conv(x=v, weight=w.astype(np.float16), pad_type="valid")), x, fp16=True)
    conv = as_fp16(torch_ref(lambda a, k: F.conv2d(a, k), as_fp16(x), as_fp16(w)))
    want = as_fp16(torch_ref(F.gelu, conv))
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=2e-3, atol=2e-3)


def test_fp16_intermediate_rounding_changes_the_result():
    """1 + 2^-11 is a float16 tie that rounds to 1, so adding 2^-11 twice stays at 1;
    held in float32 between the ops the sum would be 1 + 2^-10."""
    tiny = np.float16(2.0**-11)
    got = run(lambda v: mb.add(x=mb.add(x=v, y=tiny), y=tiny), np.ones((1, 2), np.float32), fp16=True)
    np.testing.assert_array_equal(got, np.ones((1, 2), np.float16))
    got32 = run(lambda v: mb.add(x=mb.add(x=v, y=np.float32(2.0**-11)), y=np.float32(2.0**-11)),
                np.ones((1, 2), np.float32))
    np.testing.assert_array_equal(got32, np.full((1, 2), 1 + 2.0**-10, np.float32))


def test_fp16_rounds_to_nearest_representable():
    x = np.array([[1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, 0.1, 1000.3]], np.float32)
    got = run(lambda v: mb.add(x=v, y=np.float16(0.0)), x, fp16=True)
    np.testing.assert_array_equal(got, x.astype(np.float16))
    assert got[0, 0] == 1.0 and got[0, 1] == np.float16(1.0 + 2 * 2.0**-10)


def test_fp16_overflow_becomes_inf_but_fp32_does_not():
    x = np.array([[300.0, -300.0, 200.0]], np.float32)
    got16 = run(lambda v: mb.mul(x=v, y=v), x, fp16=True)
    assert np.isinf(got16[0, 0]) and np.isinf(got16[0, 1]) and got16[0, 0] > 0
    assert got16[0, 2] == np.float16(40000.0)
    got32 = run(lambda v: mb.mul(x=v, y=v), x)
    np.testing.assert_array_equal(got32, x * x)


def test_fp16_overflowed_value_propagates():
    x = np.array([[300.0, 2.0]], np.float32)
    got = run(lambda v: mb.sub(x=mb.mul(x=v, y=v), y=mb.mul(x=v, y=v)), x, fp16=True)
    assert np.isnan(got[0, 0]) and got[0, 1] == 0.0  # inf - inf, as on device


def test_cast_to_fp16_and_back():
    x = rand(1, 20, scale=100.0)
    got = run(lambda v: mb.cast(x=mb.cast(x=v, dtype="fp16"), dtype="fp32"), x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, as_fp16(x))


# errors, captures ------------------------------------------------------------------------------

def test_unknown_op_is_an_error_naming_it():
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4), dtype=types.fp32)], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.relu(x=mb.tanh(x=x, name="my_tanh"))

    assert "tanh" not in OPS
    with pytest.raises(UnsupportedOpError, match="'tanh'.*'my_tanh'"):
        Interpreter(prog)


def test_unsupported_cast_is_an_error():
    with pytest.raises(UnsupportedOpError, match="cast to 'int32'"):
        run(lambda v: mb.cast(x=v, dtype="int32"), rand(1, 3))


def test_capture_returns_intermediates_by_name():
    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3), dtype=types.fp32)], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.sigmoid(x=mb.relu(x=x, name="r"), name="s")

    x = rand(2, 3)
    out = Interpreter(prog).run({"x": x}, capture=["r"])
    np.testing.assert_array_equal(out["r"], np.maximum(x, 0))
    np.testing.assert_allclose(out["s"], 1 / (1 + np.exp(-np.maximum(x, 0))), **FP32_TOL)
    assert set(Interpreter(prog).run({"x": x})) == {"s"}


def test_bad_feeds_and_capture_names_are_usage_errors():
    from casvit_deploy.errors import UsageError

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3), dtype=types.fp32)], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.relu(x=x, name="r")

    interp = Interpreter(prog)
    with pytest.raises(UsageError, match="missing"):
        interp.run({})
    with pytest.raises(UsageError, match="shape"):
        interp.run({"x": rand(3, 3)})
    with pytest.raises(UsageError, match="nope"):
        interp.run({"x": rand(2, 3)}, capture=["nope"])
