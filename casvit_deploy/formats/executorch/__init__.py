"""ExecuTorch (`.pte`): programs lowered to XNNPACK (or the Core ML delegate, or portable
kernels), fp32 or int8 (PT2E with XNNPACK's quantizer), run by ExecuTorch's runtime.

The delegate hides block outputs, so parity localizes by auditing the stored weights
(fp32) or by rebuilding the int8 module from the manifest (localize.py)."""

from casvit_deploy.artifacts.format import Format, Package
from casvit_deploy.formats.executorch.bench import TARGETS
from casvit_deploy.formats.executorch.details import ExecuTorchDetails
from casvit_deploy.formats.executorch.exporter import ExecuTorchExporter
from casvit_deploy.formats.executorch.localize import localize
from casvit_deploy.formats.executorch.options import ExecuTorchOptions
from casvit_deploy.formats.executorch.runner import ExecuTorchRunner
from casvit_deploy.settings import CalibrationMethod, Precision

_EXECUTORCH = Package("executorch", "executorch")
FORMAT = Format(
    "executorch", ".pte", ExecuTorchExporter, ExecuTorchRunner, ExecuTorchOptions, ExecuTorchDetails,
    export_packages=(_EXECUTORCH,), run_packages=(_EXECUTORCH,), extra="executorch",
    precisions=(Precision.FP32, Precision.INT8),
    calibration_methods=(CalibrationMethod.HISTOGRAM, CalibrationMethod.MINMAX),
    localize=localize, bench=TARGETS)
