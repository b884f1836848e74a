"""What a format is: the record each format folder (`casvit_deploy/formats/<name>/`) fills
in, naming its own classes. The table of formats is `casvit_deploy/formats/__init__.py`.

A format provides
- `options`: its export options (an `artifacts.options.FormatOptions` dataclass),
- `details`: what its manifests record about an artifact (an `artifacts.details.Details`),
- `exporter`: a class with `check(settings)`, the refusals that need no model, run before
  any work, and `export(job) -> FormatOutput` (export/base.py),
- `runner`: a `runtime.base.Runner` that opens its artifacts for parity and bench,
- optionally `localize`, its own per-block localization where the runtime hides block
  outputs (`localize(context) -> numerics.Localization`, see parity/check.py), `bench`,
  the `casvit bench` backends that time it (`BenchTarget`), and `inspect`, facts read from
  the artifact file itself for `casvit info` (`inspect(path) -> dict` with a one-line
  "summary" and what it "computes" in; UsageError for a file it cannot read), which also
  describes a file that has no manifest.
A format converted from another format's artifact (ORT from ONNX) names it as `source`:
the export pipeline exports the source first and hands it to the exporter.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from casvit_deploy.errors import BackendMissingError, UsageError
from casvit_deploy.settings import CalibrationMethod, Device, Form, Precision


@dataclass(frozen=True)
class Package:
    module: str  # import name
    pip: str     # distribution name

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


class BenchTarget(Protocol):
    """A `casvit bench -b NAME` backend that exports and times one format's artifacts.

    `unavailable(device)`: why it cannot run here beyond the format's missing packages (None:
    it can); `export_options(precision, form)`: the options of the artifact it exports;
    `runner_options(threads, device)`: how its runner opens it; `accepts(options)`: whether
    it times an existing artifact exported with `options`. May set `time_budget_s`: seconds
    of timing per case, for backends too slow for the usual number of runs; may have
    `profile(artifact, threads, runs, work_dir) -> runtime.profile.OpProfile` (where the time
    goes per op kind, for `casvit bench --profile`) and `process(threads)`, a context manager
    for process-wide settings while its cases run (e.g. a runtime's threadpool)."""

    name: str
    summary: str

    def unavailable(self, device: Device) -> str | None: ...

    def export_options(self, precision: Precision, form: Form) -> Any: ...

    def runner_options(self, threads: int | None, device: Device) -> Any: ...

    def accepts(self, options: Any) -> bool: ...


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    exporter: type                         # class: check(settings), export(job) -> FormatOutput
    runner: type                           # runtime.base.Runner subclass
    options: type                          # artifacts.options.FormatOptions subclass
    details: type                          # artifacts.details.Details subclass
    export_packages: tuple[Package, ...]   # what exporting needs
    run_packages: tuple[Package, ...]      # what running an artifact needs
    extra: str                             # pip extra that brings both
    precisions: tuple[Precision, ...]      # the first is the default
    directory: bool = False                # the artifact is a folder
    calibration_methods: tuple[CalibrationMethod, ...] = ()  # offered for int8; the first is the default
    dynamic_shape: bool = False            # can leave the input's height and width free
    source: str | None = None              # converted from this format's artifact (its name)
    localize: Callable[..., Any] | None = None  # own per-block localization (None: read block outputs)
    bench: tuple[BenchTarget, ...] = ()    # `casvit bench` backends that export and time this format
    bench_backend: str | None = None       # backend that times an existing artifact no own target accepts
    inspect: Callable[..., dict] | None = None  # facts read from the artifact file itself, for casvit info
    int8_backbone: bool = False            # int8 also for backbones (each feature map judged by agreement)

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

    def backend_for(self, options) -> str | None:
        """The `casvit bench` backend that times an existing artifact exported with `options`."""
        own = next((t.name for t in self.bench if t.accepts(options)), None)
        return own or self.bench_backend
