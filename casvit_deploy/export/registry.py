"""The format registry: one exporter per format, looked up by name."""

from __future__ import annotations

import importlib.util

from casvit_deploy.errors import BackendMissingError, UsageError
from casvit_deploy.export.base import Exporter
from casvit_deploy.export.coreml import CoreMLExporter
from casvit_deploy.export.executorch import ExecuTorchExporter
from casvit_deploy.export.onnx import OnnxExporter

EXPORTERS: dict[str, Exporter] = {e.format: e for e in (OnnxExporter(), CoreMLExporter(), ExecuTorchExporter())}
FORMATS: tuple[str, ...] = tuple(EXPORTERS)


def get_exporter(fmt: str) -> Exporter:
    """The exporter for `fmt`; UsageError listing the valid formats otherwise."""
    exporter = EXPORTERS.get(str(fmt).lower())
    if exporter is None:
        raise UsageError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)} (or all)")
    return exporter


def require_backend(exporter: Exporter) -> None:
    """BackendMissingError naming the pip command when a package the format needs is absent."""
    for module, package in exporter.requires:
        if importlib.util.find_spec(module) is None:
            raise BackendMissingError(f"{exporter.format} export needs {package}, which is not installed: "
                                      f"pip install {package}")


def default_precision(fmt: str) -> str:
    return get_exporter(fmt).precisions[0]
