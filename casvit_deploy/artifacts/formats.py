"""The format table: one `Format` record per artifact format; every lookup derives from it.

A record names the modules that implement the format (`exporter` and `runner`, as
"module:attribute"); the export and runtime packages resolve them, each inside its own
layer. Adding a format is one record here plus those two modules.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from casvit_deploy.artifacts.options import CoreMLOptions, ExecuTorchOptions, OnnxOptions
from casvit_deploy.errors import BackendMissingError, UsageError
from casvit_deploy.settings import CalibrationMethod, Precision


class Localization(str, Enum):
    """How parity finds where an artifact diverges: block outputs read from inside the
    artifact, or (where the runtime hides them) its stored weights audited."""

    INTERMEDIATES = "intermediate tensors"
    WEIGHT_AUDIT = "weight audit"


@dataclass(frozen=True)
class Package:
    module: str  # import name
    pip: str     # distribution name

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    exporter: str                          # "module:attribute" of its Exporter class
    runner: str                            # "module:attribute" of its Runner class
    export_packages: tuple[Package, ...]   # what exporting needs
    run_packages: tuple[Package, ...]      # what running an artifact needs
    extra: str                             # pip extra that brings both
    precisions: tuple[Precision, ...]      # the first is the default
    localization: Localization
    bench_backend: str                     # `casvit bench` backend that times it
    options: type                          # its export options dataclass
    directory: bool = False                # the artifact is a folder
    calibration_methods: tuple[CalibrationMethod, ...] = ()  # int8 calibration it offers; the first is the default
    dynamic_shape: bool = False            # can leave the input's height and width free

    @property
    def default_precision(self) -> Precision:
        return self.precisions[0]

    def require(self, purpose: str = "export") -> None:
        """BackendMissingError naming the pip extra when a package for `purpose` is absent."""
        packages = self.export_packages if purpose == "export" else self.run_packages
        for package in packages:
            if not package.installed():
                raise BackendMissingError(
                    f"{self.name} {purpose} needs {package.pip}, which is not installed: "
                    f"pip install 'casvit-deploy[{self.extra}]' (or pip install {package.pip})")

    def check_precision(self, precision: Precision) -> None:
        if precision not in self.precisions:
            offered = " or ".join(p.value for p in self.precisions)
            raise UsageError(f"{self.name} export supports precision {offered}, not {precision.value!r}")

    def calibration_method(self, method: CalibrationMethod | None) -> CalibrationMethod:
        """`method`, or the default, if this format offers it; UsageError otherwise."""
        if method is None:
            return self.calibration_methods[0]
        if method not in self.calibration_methods:
            offered = ", ".join(m.value for m in self.calibration_methods)
            raise UsageError(f"--calibration-method {method.value}: {self.name} int8 export offers {offered}")
        return method


def resolve(reference: str):
    """The object named by a "module:attribute" reference."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


_ONNX, _ORT = Package("onnx", "onnx"), Package("onnxruntime", "onnxruntime")
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("onnx", ".onnx", "casvit_deploy.export.onnx:OnnxExporter", "casvit_deploy.runtime.onnx:OnnxRunner",
           (_ONNX, Package("onnxscript", "onnxscript"), _ORT), (_ORT, _ONNX), "onnx",
           (Precision.FP32, Precision.INT8), Localization.INTERMEDIATES, "onnxruntime", OnnxOptions,
           dynamic_shape=True,
           calibration_methods=(CalibrationMethod.PERCENTILE, CalibrationMethod.MINMAX, CalibrationMethod.ENTROPY)),
    Format("ort", ".ort", "casvit_deploy.export.ort:OrtExporter", "casvit_deploy.runtime.ort:OrtRunner",
           (_ONNX, Package("onnxscript", "onnxscript"), _ORT), (_ORT,), "onnx",
           (Precision.FP32,), Localization.INTERMEDIATES, "onnxruntime", OnnxOptions),
    Format("coreml", ".mlpackage", "casvit_deploy.export.coreml:CoreMLExporter",
           "casvit_deploy.runtime.coreml:CoreMLRunner", (Package("coremltools", "coremltools"),),
           (Package("coremltools", "coremltools"),), "coreml",
           (Precision.FP16, Precision.FP32, Precision.INT8, Precision.W8A8), Localization.INTERMEDIATES, "coreml",
           CoreMLOptions, directory=True, calibration_methods=(CalibrationMethod.MINMAX,)),
    Format("executorch", ".pte", "casvit_deploy.export.executorch:ExecuTorchExporter",
           "casvit_deploy.runtime.executorch:ExecuTorchRunner", (Package("executorch", "executorch"),),
           (Package("executorch", "executorch"),), "executorch", (Precision.FP32, Precision.INT8),
           Localization.WEIGHT_AUDIT, "executorch", ExecuTorchOptions,
           calibration_methods=(CalibrationMethod.HISTOGRAM, CalibrationMethod.MINMAX)),
)}
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)
ALL = "all"


def get_format(name: str) -> Format:
    """The record for `name`; UsageError listing the formats otherwise."""
    found = FORMATS.get(str(name).strip().lower())
    if found is None:
        raise UsageError(f"unknown format {name!r}: choose one of {', '.join(FORMATS)} (or {ALL})")
    return found


def parse_formats(values: Iterable[str]) -> list[Format]:
    """`--format` values, repeated and/or comma-separated, "all" for every format; in table order."""
    names = [part for value in values for part in str(value).split(",") if part.strip()]
    if not names:
        raise UsageError(f"--format: give one of {', '.join(FORMATS)} or {ALL}")
    if any(n.strip().lower() == ALL for n in names):
        return list(FORMATS.values())
    chosen = {get_format(n).name for n in names}
    return [f for f in FORMATS.values() if f.name in chosen]


def format_for_path(artifact: Path) -> Format:
    """The format of an existing artifact, from its suffix; UsageError otherwise."""
    artifact = Path(artifact)
    if not artifact.exists():
        raise UsageError(f"artifact {artifact} does not exist")
    for fmt in FORMATS.values():
        if artifact.suffix.lower() == fmt.suffix:
            return fmt
    known = ", ".join(f.suffix for f in FORMATS.values())
    raise UsageError(f"{artifact}: unknown artifact format {artifact.suffix or '(no suffix)'!r}; expected {known}")
