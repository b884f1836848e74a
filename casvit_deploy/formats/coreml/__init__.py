"""CoreML (`.mlpackage`): ML programs converted by coremltools, fp16 or fp32, with int8,
W8A8 and palettized compression; run by Apple's runtime on macOS and by this package's
MIL reference interpreter anywhere (mil/), which also reads block outputs."""

from casvit_deploy.artifacts.format import Format, Package
from casvit_deploy.formats.coreml.bench import CoreMLTarget
from casvit_deploy.formats.coreml.details import CoreMLDetails
from casvit_deploy.formats.coreml.exporter import CoreMLExporter
from casvit_deploy.formats.coreml.options import CoreMLOptions
from casvit_deploy.formats.coreml.runner import CoreMLRunner
from casvit_deploy.settings import CalibrationMethod, Precision

_COREMLTOOLS = Package("coremltools", "coremltools")
FORMAT = Format(
    "coreml", ".mlpackage", CoreMLExporter, CoreMLRunner, CoreMLOptions, CoreMLDetails,
    export_packages=(_COREMLTOOLS,), run_packages=(_COREMLTOOLS,), extra="coreml",
    precisions=(Precision.FP16, Precision.FP32, Precision.INT8, Precision.W8A8), directory=True,
    calibration_methods=(CalibrationMethod.MINMAX,), bench=(CoreMLTarget(),))
