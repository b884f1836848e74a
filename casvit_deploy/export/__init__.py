"""Export to ONNX, CoreML and ExecuTorch: one exporter per format behind one interface."""

from casvit_deploy.export.api import ExportResult, artifact_stem, default_out_dir, export_model
from casvit_deploy.manifests import read_manifest
from casvit_deploy.export.registry import EXPORTERS, FORMATS, default_precision, get_exporter

__all__ = ["EXPORTERS", "FORMATS", "ExportResult", "artifact_stem", "default_out_dir", "default_precision",
           "export_model", "get_exporter", "read_manifest"]
