"""ORT format (`.ort`): ONNX Runtime's own flatbuffer format for ONNX Runtime Mobile and
minimal builds, converted from this project's ONNX export (the format's `source`) by ONNX
Runtime's converter, run by ONNX Runtime (timed by the onnxruntime bench backend)."""

from casvit_deploy.artifacts.format import Format, Package
from casvit_deploy.formats.ort.details import OrtDetails
from casvit_deploy.formats.ort.exporter import OrtExporter
from casvit_deploy.formats.ort.options import OrtOptions
from casvit_deploy.formats.ort.runner import OrtRunner
from casvit_deploy.settings import Precision

_ONNXRUNTIME = Package("onnxruntime", "onnxruntime")
FORMAT = Format(
    "ort", ".ort", OrtExporter, OrtRunner, OrtOptions, OrtDetails,
    export_packages=(Package("onnx", "onnx"), Package("onnxscript", "onnxscript"), _ONNXRUNTIME),
    run_packages=(_ONNXRUNTIME,), extra="onnx", precisions=(Precision.FP32,), source="onnx",
    bench_backend="onnxruntime")
