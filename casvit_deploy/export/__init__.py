"""Export to ONNX, CoreML and ExecuTorch: one exporter per format, named by the format table."""

from casvit_deploy.export.api import (
    ExportResult, artifact_stem, check_dynamic_shape, check_settings, default_out_dir, export_model,
)

__all__ = ["ExportResult", "artifact_stem", "check_dynamic_shape", "check_settings", "default_out_dir", "export_model"]
