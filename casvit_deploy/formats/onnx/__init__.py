"""ONNX (`.onnx`): the dynamo `torch.onnx` export at opset 17-20, fp32 or int8 (ONNX Runtime's
static QDQ quantization), run by ONNX Runtime, block outputs read by value name."""

from casvit_deploy.artifacts.format import Format, Package
from casvit_deploy.formats.onnx.bench import OnnxRuntimeTarget
from casvit_deploy.formats.onnx.details import OnnxDetails
from casvit_deploy.formats.onnx.exporter import OnnxExporter
from casvit_deploy.formats.onnx.options import OnnxOptions
from casvit_deploy.formats.onnx.runner import OnnxRunner
from casvit_deploy.settings import CalibrationMethod, Precision

ONNX, ONNXSCRIPT, ONNXRUNTIME = Package("onnx", "onnx"), Package("onnxscript", "onnxscript"), Package(
    "onnxruntime", "onnxruntime")
FORMAT = Format(
    "onnx", ".onnx", OnnxExporter, OnnxRunner, OnnxOptions, OnnxDetails,
    export_packages=(ONNX, ONNXSCRIPT, ONNXRUNTIME), run_packages=(ONNXRUNTIME, ONNX), extra="onnx",
    precisions=(Precision.FP32, Precision.INT8), dynamic_shape=True,
    calibration_methods=(CalibrationMethod.PERCENTILE, CalibrationMethod.MINMAX, CalibrationMethod.ENTROPY),
    bench=(OnnxRuntimeTarget(),))
