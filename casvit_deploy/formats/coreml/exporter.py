"""The CoreML exporter: checks a request before any work (deployment target, compression and
the target it needs, flags CoreML does not take), then converts (convert.py)."""

from __future__ import annotations

from casvit_deploy.errors import UsageError
from casvit_deploy.export.base import ExportJob, ExportSettings, FormatOutput
from casvit_deploy.formats.coreml.compression import check_target, compression_for, target_level
from casvit_deploy.formats.coreml.labels import check_source, read_labels
from casvit_deploy.formats.coreml.options import CoreMLOptions
from casvit_deploy.settings import Precision

UNSUPPORTED_INT8 = (("keep_float", "--keep-float"), ("auto_keep_float", "--auto-keep-float"),
                    ("quantize_residual", "--quantize-residual"), ("calibration_method", "--calibration-method"))


def _check_program(settings: ExportSettings) -> None:
    options: CoreMLOptions = settings.options
    if settings.dynamic_batch:
        raise UsageError("CoreML export takes a fixed batch; drop --dynamic-batch for coreml")
    if options.fp16_output and settings.precision is not Precision.FP16:
        raise UsageError("--fp16-output applies to fp16 CoreML programs only; drop it or use --precision fp16")
    if options.classifier and settings.batch != 1:
        raise UsageError("a CoreML classifier classifies one image per prediction; drop --batch for --labels")
    check_source(options.labels)


def _check_compression(settings: ExportSettings) -> None:
    """The compression asked for and its deployment target; flags that CoreML does not take."""
    options: CoreMLOptions = settings.options
    target_level(options.deployment_target)
    compression = compression_for(settings.precision, options.palettize)
    if compression is not None:
        check_target(compression, options.deployment_target)
    if options.palettize_auto and settings.precision.calibrated:
        raise UsageError(f"--palettize compresses the weights of an fp16 or fp32 program; it does not combine with "
                         f"--precision {settings.precision.value}")
    if options.fp16_safe and settings.precision is Precision.FP32:
        raise UsageError("--fp16-safe keeps fp16-sensitive blocks in fp32; it applies to fp16 computation, "
                         "not --precision fp32")
    given = [flag for field, flag in UNSUPPORTED_INT8 if options.int8 and getattr(options.int8, field)]
    if given:
        raise UsageError(f"{given[0]} is not offered by CoreML compression (ONNX and ExecuTorch int8 only)")


class CoreMLExporter:
    @staticmethod
    def check(settings: ExportSettings) -> None:
        _check_program(settings)
        _check_compression(settings)

    @staticmethod
    def check_model(settings: ExportSettings, loaded) -> None:
        """A classifier package (--labels) needs a model with classes, one label each; a
        top-1 budget (--data) needs a classifier."""
        if settings.options.data is not None and loaded.is_backbone:
            raise UsageError("--data and --max-top1-drop judge top-1 on labelled images: for classifiers only")
        labels = settings.options.labels
        if labels is None:
            return
        if loaded.is_backbone:
            raise UsageError("--labels makes a classifier; a dense-prediction backbone has no classes")
        read_labels(labels, loaded.num_classes)

    def export(self, job: ExportJob) -> FormatOutput:
        from casvit_deploy.formats.coreml.convert import export_package

        return export_package(job)
