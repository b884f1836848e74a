"""`export_model`: one loaded model to one load-checked artifact plus manifest, atomically."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from casvit_deploy.artifacts.formats import FORMATS, Format, get_format
from casvit_deploy.artifacts.manifest import Manifest, manifest_path
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.errors import CasvitError, ExportError, ParityFailure, UsageError
from casvit_deploy.export.base import ExportJob, Progress, no_progress
from casvit_deploy.export.graph import block_outputs
from casvit_deploy.export.record import build_manifest, embedded_metadata
from casvit_deploy.export.registry import exporter_for
from casvit_deploy.export.staging import output_folder, publish, refuse_overwrite, staging_dir
from casvit_deploy.export.verify import load_check
from casvit_deploy.model.blocks import model_outputs
from casvit_deploy.model.loading import LoadedModel, check_resolution
from casvit_deploy.paths import EXPORTS
from casvit_deploy.rewrite import deploy_form
from casvit_deploy.settings import Delegate, Form, Head, Precision, Resolution, choice

MAX_BATCH = 4096
# A check of the staged artifact before it is published: (staged artifact, final path) ->
# (status, reason); "fail" publishes nothing.
Gate = Callable[[Path, Path], tuple[str, str]]
CALIBRATED = (Precision.INT8, Precision.W8A8)  # precisions that take calibration settings


@dataclass
class ExportResult:
    artifact: Path
    manifest: Manifest
    manifest_path: Path
    seconds: float
    notes: list[str] = field(default_factory=list)     # one-line facts for the export summary
    gate: tuple[str, str] | None = None                 # the gate's (status, reason), if one ran


def _kind_suffix(form: Form, backbone: bool) -> str:
    return ("" if form is Form.DEPLOY else "_upstream") + ("_backbone" if backbone else "")


def artifact_stem(variant: str, resolution: Resolution | int | str, precision: Precision, form: Form = Form.DEPLOY,
                  batch: int = 1, dynamic_batch: bool = False, *, dynamic_shape: bool = False,
                  backbone: bool = False) -> str:
    """e.g. casvit_xs_224_fp32, casvit_xs_512x768_fp32_backbone; suffixes mark upstream form,
    a backbone, fixed batch > 1, dynamic batch ("_dynamic") and dynamic height and width
    ("_dynamic_hw", both: "_dynamic_bhw")."""
    stem = f"casvit_{variant}_{Resolution.parse(resolution)}_{Precision(precision).value}"
    stem += _kind_suffix(form, backbone)
    if dynamic_shape:
        return stem + ("_dynamic_bhw" if dynamic_batch else "_dynamic_hw") + (f"_b{batch}" if batch > 1 else "")
    return stem + ("_dynamic" if dynamic_batch else (f"_b{batch}" if batch > 1 else ""))


def default_out_dir(variant: str, resolution: Resolution | int | str, precision: Precision, form: Form = Form.DEPLOY,
                    backbone: bool = False) -> Path:
    """models/exports/<variant>_<resolution>_<precision>[_upstream][_backbone]/"""
    size = Resolution.parse(resolution)
    return EXPORTS / f"{variant}_{size}_{Precision(precision).value}{_kind_suffix(form, backbone)}"


def check_settings(resolution: Resolution | int | str | None, batch: int) -> Resolution | None:
    """The resolution (None: not given) as a Resolution; UsageError for a resolution or
    batch no artifact can have."""
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= MAX_BATCH:
        raise UsageError(f"--batch {batch} must be from 1 to {MAX_BATCH}")
    return None if resolution is None else check_resolution(resolution)


def check_dynamic_shape(fmt: Format) -> None:
    """UsageError unless `fmt` can leave the input's height and width free."""
    if not fmt.dynamic_shape:
        offered = ", ".join(f.name for f in FORMATS.values() if f.dynamic_shape)
        raise UsageError(f"{fmt.name} artifacts take a fixed input size here; --dynamic-shape is for {offered} only")


def _validate(loaded: LoadedModel, fmt: Format, batch: int, precision: Precision, options, dynamic_shape: bool):
    check_settings(None, batch)
    fmt.check_precision(precision)
    if not isinstance(options, fmt.options):
        raise UsageError(f"{fmt.name} export takes {fmt.options.__name__}, not {type(options).__name__}")
    if getattr(options, "int8", None) is not None and precision not in CALIBRATED:
        raise UsageError("the calibration and keep-float settings apply to --precision int8 or w8a8 only")
    if precision in CALIBRATED:
        _validate_int8(loaded, fmt, options)
    if dynamic_shape:
        check_dynamic_shape(fmt)
    return exporter_for(fmt)


def _validate_int8(loaded: LoadedModel, fmt: Format, options) -> None:
    """The int8 settings a format and model can take, checked before any work."""
    from casvit_deploy.data.calibration import check_samples
    from casvit_deploy.quantize.targets import check_targets

    int8 = getattr(options, "int8", None)
    if loaded.is_backbone:
        raise UsageError("int8 export is for classifiers (judged by agreement of their logits); "
                         "export a backbone in fp32")
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


def export_model(loaded: LoadedModel, fmt: Format | str, out_dir: Path, *, resolution: Resolution | int | str,
                 batch: int = 1, dynamic_batch: bool = False, dynamic_shape: bool = False,
                 precision: Precision | str | None = None, form: Form = Form.DEPLOY, disable: tuple[str, ...] = (),
                 force: bool = False, options=None, progress: Progress | None = None,
                 gate: Gate | None = None) -> ExportResult:
    """Export `loaded` (a classifier or a backbone) as `fmt` into `out_dir`: a load-checked
    artifact + manifest, or nothing. `resolution` is the input size (with `dynamic_shape`,
    ONNX only: the size the artifact is checked at; height and width are then free).

    With `gate` (the parity check), the staged artifact is published only if it does not
    fail (ParityFailure otherwise), so an interrupted or failed check leaves the previous
    artifact in place; the gate records its result in the manifest. One export at a time
    writes to `out_dir` (FolderBusy, a UsageError, for a second). Raises
    UsageError/BackendMissingError for bad requests (before any work) and ExportError when
    the backend fails; an existing artifact is replaced only with `force`.
    """
    progress = progress or no_progress
    started = time.perf_counter()
    resolution = check_resolution(resolution)
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    precision = choice(Precision, precision, "--precision") if precision is not None else fmt.default_precision
    options = fmt.options() if options is None else options
    exporter = _validate(loaded, fmt, batch, precision, options, dynamic_shape)
    name = artifact_stem(loaded.variant, resolution, precision, form, batch, dynamic_batch,
                         dynamic_shape=dynamic_shape, backbone=loaded.is_backbone) + fmt.suffix
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
                                                                                            head, **how),
                            outputs=model_outputs(model), dynamic_shape=dynamic_shape)
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
