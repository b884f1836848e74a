"""Image inputs: from a preprocessed image back to the raw pixels the program takes."""

from __future__ import annotations

import numpy as np

from casvit_deploy.artifacts.preprocessing import Preprocessing


def _const(var):
    return np.asarray(var.val, dtype=np.float64) if var.op is not None and var.op.op_type == "const" else None


def _sole_consumer(var, op_type: str):
    ops = list(var.child_ops)
    if len(ops) == 1 and ops[0].op_type == op_type:
        return ops[0]
    return None


def image_scale_bias(program, input_name: str, function: str = "main") -> tuple[np.ndarray, np.ndarray]:
    """(scale, bias) with program input = pixels · scale + bias, read from the `mul` and
    `add` ops that an image input feeds; (1, 0) where the program has neither."""
    var = program.functions[function].inputs[input_name]
    scale, bias = np.float64(1.0), np.float64(0.0)
    mul = _sole_consumer(var, "mul")
    if mul is not None and _const(mul.inputs["y"]) is not None:
        scale, var = _const(mul.inputs["y"]), mul.outputs[0]
    add = _sole_consumer(var, "add")
    if add is not None and _const(add.inputs["y"]) is not None:
        bias = _const(add.inputs["y"])
    return scale, bias


def pixel_transform(preprocessing: Preprocessing):
    """image -> pixels inverting `preprocessing`, image = (pixels·scale - mean) / std per
    channel (NCHW)."""
    mean, std = (np.asarray(v, np.float64).reshape(1, -1, 1, 1) for v in (preprocessing.mean, preprocessing.std))
    scale = preprocessing.scale
    return lambda image: (image * std + mean) / scale
