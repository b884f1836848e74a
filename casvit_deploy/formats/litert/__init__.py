"""LiteRT (TensorFlow Lite, `.tflite`): converted by litert-torch (no TensorFlow) in fp32,
with fp16 weights (ai-edge-quantizer) or in int8 (PT2E with litert-torch's quantizer); run
by ai-edge-litert's interpreter with XNNPACK; block outputs read from the interpreter's
preserved intermediate tensors."""

from casvit_deploy.artifacts.format import Format, Package
from casvit_deploy.formats.litert.bench import LiteRTTarget
from casvit_deploy.formats.litert.describe import inspect
from casvit_deploy.formats.litert.details import LiteRTDetails
from casvit_deploy.formats.litert.exporter import LiteRTExporter
from casvit_deploy.formats.litert.options import LiteRTOptions
from casvit_deploy.formats.litert.runner import LiteRTRunner
from casvit_deploy.settings import CalibrationMethod, Precision

_RUNTIME = Package("ai_edge_litert", "ai-edge-litert")
_CONVERTER = (Package("litert_torch", "litert-torch"), Package("litert_converter", "litert-converter"),
              Package("ai_edge_quantizer", "ai-edge-quantizer"))
FORMAT = Format(
    "litert", ".tflite", LiteRTExporter, LiteRTRunner, LiteRTOptions, LiteRTDetails,
    export_packages=_CONVERTER + (_RUNTIME,), run_packages=(_RUNTIME,), extra="litert",
    precisions=(Precision.FP32, Precision.FP16, Precision.INT8),
    calibration_methods=(CalibrationMethod.HISTOGRAM, CalibrationMethod.MINMAX), bench=(LiteRTTarget(),), inspect=inspect,
    int8_backbone=True)
