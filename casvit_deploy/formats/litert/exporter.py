"""The LiteRT exporter: what it refuses before any work, then the conversion (convert.py)."""

from __future__ import annotations

from casvit_deploy.errors import UsageError
from casvit_deploy.export.base import ExportJob, ExportSettings, FormatOutput


class LiteRTExporter:
    @staticmethod
    def check(settings: ExportSettings) -> None:
        """A fixed batch; the residual stream stays float (LiteRT's quantizer never quantizes it)."""
        if settings.dynamic_batch:
            raise UsageError("LiteRT export takes a fixed batch here; drop --dynamic-batch for litert")
        if settings.options.int8 is not None and settings.options.int8.quantize_residual:
            raise UsageError("--quantize-residual is not offered for litert: its quantizer keeps the residual "
                             "adds float")

    def export(self, job: ExportJob) -> FormatOutput:
        from casvit_deploy.formats.litert.convert import export_tflite

        return export_tflite(job)
