"""`export_model`: one loaded model to one load-checked artifact plus manifest, atomically."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from casvit_deploy.artifacts.formats import Format, get_format
from casvit_deploy.artifacts.manifest import Manifest, manifest_path
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.errors import CasvitError, ExportError, ParityFailure, UsageError
from casvit_deploy.export.base import ExportJob, Progress, no_progress
from casvit_deploy.export.graph import block_outputs
from casvit_deploy.export.record import build_manifest, embedded_metadata
from casvit_deploy.export.registry import exporter_for
from casvit_deploy.export.staging import output_folder, publish, refuse_overwrite, staging_dir
from casvit_deploy.export.verify import load_check
from casvit_deploy.model.loading import LoadedModel, check_resolution
from casvit_deploy.paths import EXPORTS
from casvit_deploy.rewrite import deploy_form
from casvit_deploy.settings import Delegate, Form, Head, Precision, choice

MAX_BATCH = 4096
# A check of the staged artifact before it is published: (staged artifact, final path) ->
# (status, reason); "fail" publishes nothing.
Gate = Callable[[Path, Path], tuple[str, str]]


@dataclass
class ExportResult:
    artifact: Path
    manifest: Manifest
    manifest_path: Path
    seconds: float
    notes: list[str] = field(default_factory=list)     # one-line facts for the export summary
    gate: tuple[str, str] | None = None                 # the gate's (status, reason), if one ran


def artifact_stem(variant: str, resolution: int, precision: Precision, form: Form = Form.DEPLOY,
                  batch: int = 1, dynamic_batch: bool = False) -> str:
    """e.g. casvit_xs_224_fp32; suffixes mark upstream form, fixed batch > 1, dynamic batch."""
    stem = f"casvit_{variant}_{resolution}_{Precision(precision).value}"
    stem += "" if form is Form.DEPLOY else "_upstream"
    stem += "_dynamic" if dynamic_batch else (f"_b{batch}" if batch > 1 else "")
    return stem


def default_out_dir(variant: str, resolution: int, precision: Precision, form: Form = Form.DEPLOY) -> Path:
    """models/exports/<variant>_<resolution>_<precision>[_upstream]/"""
    suffix = "" if form is Form.DEPLOY else "_upstream"
    return EXPORTS / f"{variant}_{resolution}_{Precision(precision).value}{suffix}"


def check_settings(resolution: int | None, batch: int) -> None:
    """UsageError for a resolution (None: not given) or batch no artifact can have."""
    if resolution is not None:
        check_resolution(resolution)
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= MAX_BATCH:
        raise UsageError(f"--batch {batch} must be from 1 to {MAX_BATCH}")


def _validate(loaded: LoadedModel, fmt: Format, resolution: int, batch: int, precision: Precision, options):
    check_settings(resolution, batch)
    fmt.check_precision(precision)
    if not isinstance(options, fmt.options):
        raise UsageError(f"{fmt.name} export takes {fmt.options.__name__}, not {type(options).__name__}")
    if getattr(options, "int8", None) is not None and precision is not Precision.INT8:
        raise UsageError("the calibration and keep-float settings apply to --precision int8 only")
    if precision is Precision.INT8:
        _validate_int8(loaded, fmt, options)
    if getattr(loaded.model, "fork_feat", False):
        raise UsageError("this checkpoint is a detection/segmentation backbone (4 feature maps); "
                         "export supports classifiers only")
    return exporter_for(fmt)


def _validate_int8(loaded: LoadedModel, fmt: Format, options) -> None:
    """The int8 settings a format and model can take, checked before any work."""
    from casvit_deploy.data.calibration import check_samples
    from casvit_deploy.quantize.targets import check_targets

    int8 = getattr(options, "int8", None)
    if getattr(options, "delegate", Delegate.XNNPACK) is not Delegate.XNNPACK:
        raise UsageError("int8 ExecuTorch programs are quantized for XNNPACK: use --delegate xnnpack")
    if int8 is None:
        return
    fmt.calibration_method(int8.calibration_method)
    check_targets(loaded.model, int8.keep_float)
    check_samples(int8.calibration_samples)
    if int8.calibration is not None and not Path(int8.calibration).is_dir():
        raise UsageError(f"--calibration {int8.calibration} is not a folder")


def _run_exporter(fmt: Format, exporter, job: ExportJob):
    try:
        return exporter.export(job)
    except CasvitError:
        raise
    except Exception as err:  # each backend fails in its own way; report its first line
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise ExportError(f"{fmt.name} export failed: {type(err).__name__}: {reason}") from err


def _run_gate(gate: Gate | None, staged: Path, final: Path, fmt: Format) -> tuple[str, str] | None:
    if gate is None:
        return None
    status, reason = gate(staged, final)
    if status == "fail":
        raise ParityFailure(f"{fmt.name} parity check failed ({reason}); {final.name} was not published "
                            "(export with --no-check to keep it, then run casvit parity on it)")
    return status, reason


def export_model(loaded: LoadedModel, fmt: Format | str, out_dir: Path, *, resolution: int, batch: int = 1,
                 dynamic_batch: bool = False, precision: Precision | str | None = None, form: Form = Form.DEPLOY,
                 disable: tuple[str, ...] = (), force: bool = False, options=None,
                 progress: Progress | None = None, gate: Gate | None = None) -> ExportResult:
    """Export `loaded` as `fmt` into `out_dir`: a load-checked artifact + manifest, or nothing.

    `verify(staged, final)` runs on the finished artifact before it is published (the
    post-export parity check), so an interrupted check leaves the previous artifact in
    place. Raises UsageError/BackendMissingError for bad requests (before any work) and
    ExportError when the backend fails; an existing artifact is replaced only with `force`.
    With `gate` (the parity check), the staged artifact is published only if it does not
    fail (ParityFailure otherwise); the gate records its result in the manifest.
    One export at a time writes to `out_dir` (FolderBusy, a UsageError, for a second).
    """
    progress = progress or no_progress
    started = time.perf_counter()
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    precision = choice(Precision, precision, "--precision") if precision is not None else fmt.default_precision
    options = fmt.options() if options is None else options
    exporter = _validate(loaded, fmt, resolution, batch, precision, options)
    name = artifact_stem(loaded.variant, resolution, precision, form, batch, dynamic_batch) + fmt.suffix
    with output_folder(Path(out_dir)) as out_dir:
        final = out_dir / name
        refuse_overwrite(final, force)
        progress("rewrite")
        model, passes = deploy_form(loaded.model, form, tuple(disable))
        preprocessing = Preprocessing.for_resolution(resolution)
        with staging_dir(out_dir) as staging:
            job = ExportJob(model, staging / final.name, resolution, batch, dynamic_batch, precision,
                            loaded.num_classes, embedded_metadata(loaded, resolution, preprocessing, passes),
                            options, preprocessing, progress=progress,
                            check=lambda path, program, head=Head.LOGITS, **how: load_check(path, job, program,
                                                                                            head, **how))
            output = _run_exporter(fmt, exporter, job)
            progress("save")
            manifest = build_manifest(loaded, fmt.name, job, output, job.artifact, final, form, passes,
                                      block_outputs(output.program, model), time.perf_counter() - started)
            manifest.save(job.artifact)
            progress("parity" if gate else "publish")
            outcome = _run_gate(gate, job.artifact, final, fmt)
            manifest = Manifest.load(job.artifact) if outcome else manifest  # with the gate's parity record
            publish(job.artifact, final, force)
    return ExportResult(final, manifest, manifest_path(final), manifest.export_seconds, output.notes, outcome)
