"""ORT format export (`.ort`, for ONNX Runtime Mobile and minimal builds).

The format's source is ONNX: the export pipeline first exports the `.onnx` file (same
opset, load-checked) into the staging folder, and this exporter converts it with ONNX
Runtime's own converter, `onnxruntime.tools.convert_onnx_models_to_ort`, with its "Fixed"
optimization style for ARM targets (the graph optimized once at conversion, without the
x86-only NCHWc layout). The `.ort` file is then load-checked through ONNX Runtime like any
artifact. The manifest records the ORT format version, the operators a reduced ONNX
Runtime build must include (the converter's required_operators.config), the first ONNX
Runtime release that loads the file, and the mobile usability of the source graph.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from casvit_deploy.errors import ExportError, first_line
from casvit_deploy.export.base import ExportJob, ExportSettings, FormatOutput
from casvit_deploy.formats.ort.details import OrtDetails
from casvit_deploy.formats.ort.releases import min_onnxruntime

STYLE, TARGET = "Fixed", "arm"


def _convert(source: Path, out_dir: Path) -> tuple[Path, Path]:
    """(.ort file, required-operators config) written by ONNX Runtime's converter."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            convert_onnx_models_to_ort(source, output_dir=out_dir, optimization_styles=[OptimizationStyle[STYLE]],
                                       target_platform=TARGET)
    except Exception as err:
        raise ExportError(f"ONNX Runtime's ORT converter failed: {first_line(err)}") from None
    return out_dir / f"{source.stem}.ort", out_dir / f"{source.stem}.required_operators.config"


def required_operators(config: Path) -> dict[str, list[str]]:
    """"domain;opset" -> ops, from a converter config ("ai.onnx;11;Conv" lines, # comments)."""
    found: dict[str, list[str]] = {}
    for line in config.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            domain, opset, ops = line.strip().split(";")
            found[f"{domain};{opset}"] = sorted(ops.split(","))
    return found


def ort_format_version(path: Path) -> int:
    """The ORT format version a `.ort` file declares."""
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs.InferenceSession import InferenceSession

    return int(InferenceSession.GetRootAs(path.read_bytes(), 0).OrtVersion())


def _operator_ids(operators: dict[str, list[str]]) -> frozenset[tuple[str, int, str]]:
    return frozenset((key.split(";")[0], int(key.split(";")[1]), op) for key, ops in operators.items() for op in ops)


class OrtExporter:
    @staticmethod
    def check(settings: ExportSettings) -> None:
        """What ORT cannot take is refused by its ONNX source's checks."""

    def export(self, job: ExportJob) -> FormatOutput:
        source, onnx_output = job.source.path, job.source.output
        job.progress("convert")
        converted, config = _convert(source, source.parent / "ort-converter")
        os.replace(converted, job.artifact)
        job.progress("verify")
        check = job.check(job.artifact, onnx_output.program)
        if check.failures:
            raise ExportError(f"ORT format output differs from eager PyTorch: {check.failures[0]}")
        operators = required_operators(config)
        facts = onnx_output.details
        version = ort_format_version(job.artifact)
        minimum = min_onnxruntime(facts.min_onnxruntime, version, _operator_ids(operators))
        details = OrtDetails(
            opset=facts.opset, ir_version=facts.ir_version, ort_format_version=version, min_onnxruntime=minimum,
            optimization={"style": STYLE, "target_platform": TARGET}, required_operators=operators,
            source_onnx={"optimized": facts.optimized, "gelu_op": facts.gelu_op, "load_check": facts.load_check},
            mobile_usability=facts.mobile_usability, load_check=check.to_dict())
        notes = [f"ORT format {version} (opset {details.opset}): loads in ONNX Runtime >= {minimum}",
                 facts.mobile_usability["summary"]]
        return FormatOutput(onnx_output.program, onnx_output.inputs, onnx_output.outputs, details, notes=notes)
