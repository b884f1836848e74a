"""ExecuTorch int8: PT2E (quantize/pt2e.py) with XNNPACK's quantizer.

Weights int8 per-channel symmetric, activations int8 per-tensor affine, static ranges
observed on a calibration set (HistogramObserver by default: the range of least
quantization error; or min-max); XNNPACK's partitioner lowers the q/dq pairs into int8
kernels.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from casvit_deploy.quantize import pt2e
from casvit_deploy.quantize.pt2e import KeepFloat, nothing_float
from casvit_deploy.settings import CalibrationMethod

SCHEME = ("PT2E XNNPACKQuantizer: weights int8 per-channel symmetric; activations int8 per-tensor affine, "
          "static, calibrated")


def quantization_config(method: CalibrationMethod):
    """XNNPACK's symmetric per-channel static config, activations observed by `method`."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config

    return pt2e.observed_by(get_symmetric_quantization_config(is_per_channel=True), method)


def config_record(method: CalibrationMethod) -> dict:
    """The quantizer settings, as the manifest records them."""
    return {"quantizer": "executorch XNNPACKQuantizer (PT2E)", "weights": "int8 per-channel symmetric [-127, 127]",
            "activations": "int8 per-tensor affine [-128, 127], static", "observer": pt2e.observer(method).__name__}


def quantizer(method: CalibrationMethod, keep_float: KeepFloat):
    """XNNPACK's quantizer, leaving the nodes `keep_float` covers unannotated."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer

    made = XNNPACKQuantizer().set_global(quantization_config(method))
    made.set_filter_function(lambda node: not keep_float(pt2e.origin(node)))
    return made


def quantize(program, images: np.ndarray, batch: int | None, method: CalibrationMethod,
             keep_float: KeepFloat = nothing_float):
    """The converted (q/dq) module of the fp32 program, calibrated on `images`."""
    return pt2e.quantize(program, images, batch, partial(quantizer, method), keep_float)

