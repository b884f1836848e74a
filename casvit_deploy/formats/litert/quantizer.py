"""LiteRT int8: PT2E (quantize/pt2e.py) with litert-torch's own quantizer, whose q/dq graph
its converter turns into TFLite int8 kernels.

Weights int8 per-channel symmetric, activations int8 per-tensor affine, static ranges
observed on a calibration set (HistogramObserver by default, or min-max); sigmoid outputs at
the fixed scale 1/256 that TFLite's int8 LOGISTIC needs. The quantizer never annotates the
residual adds, so the residual stream stays float (there is no --quantize-residual here).
Keep-float goes through the quantizer's annotation filter (`KeepFloat`): its module-name
and module-type filters match nothing under torch 2.13's `nn_module_stack`.
"""

from __future__ import annotations

import functools

from casvit_deploy.errors import ExportError
from casvit_deploy.quantize import pt2e
from casvit_deploy.quantize.pt2e import KeepFloat, nothing_float
from casvit_deploy.settings import CalibrationMethod

SCHEME = ("PT2E litert-torch PT2EQuantizer: weights int8 per-channel symmetric; activations int8 per-tensor "
          "affine, static, calibrated; sigmoid outputs at the fixed scale 1/256")
HOOK = "_annotate_for_static_quantization_config"  # litert-torch 0.10's private annotation step


@functools.cache
def _keep_float_class():
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer

    if not hasattr(PT2EQuantizer, HOOK):
        raise ExportError(f"this litert-torch has no PT2EQuantizer.{HOOK}: install the pinned "
                          "litert-torch (pip install -c constraints.txt 'casvit-deploy[litert]')")

    class KeepFloatQuantizer(PT2EQuantizer):
        """PT2EQuantizer that leaves the nodes `keep_float` covers unannotated (float)."""

        def __init__(self, keep_float: KeepFloat):
            super().__init__()
            self.keep_float = keep_float

        def _annotate_for_static_quantization_config(self, model):
            self._annotate_all_static_patterns(model, self.global_config,
                                               lambda node: not self.keep_float(pt2e.origin(node)))
            return model

    return KeepFloatQuantizer


def quantization_config(method: CalibrationMethod):
    """litert-torch's symmetric per-channel static config, activations observed by `method`."""
    from litert_torch.quantize.pt2e_quantizer import get_symmetric_quantization_config

    return pt2e.observed_by(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False), method)


def quantizer(method: CalibrationMethod, keep_float: KeepFloat = nothing_float):
    return _keep_float_class()(keep_float).set_global(quantization_config(method))


def converter_config(method: CalibrationMethod):
    """What the converter is told: a static PT2E quantizer (without it, it writes the q/dq
    pairs as float ops around float compute: a fake-int8 file, see flatbuffer.census)."""
    from litert_torch.quantize.quant_config import QuantConfig

    return QuantConfig(pt2e_quantizer=quantizer(method))


def config_record(method: CalibrationMethod) -> dict:
    """The quantizer settings, as the manifest records them."""
    return {"quantizer": "litert-torch PT2EQuantizer (PT2E)", "weights": "int8 per-channel symmetric [-127, 127]",
            "activations": "int8 per-tensor affine [-128, 127], static; sigmoid outputs scale 1/256, zero point -128",
            "observer": pt2e.observer(method).__name__}
