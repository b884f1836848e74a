"""One loaded model to one artifact of one format: checked, exported in a staging folder,
load-checked, described by its manifest, passed through the gate, published atomically.

`check_format` refuses a request before any work (the part that needs no model runs before
the model is loaded, see pipeline/request.py); `export_model` is the library call for one
format (it checks, then exports).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from casvit_deploy.artifacts.format import Format
from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.artifacts.records import ParityRecord, ParityStatus
from casvit_deploy.errors import CasvitError, ExportError, ParityFailure, UsageError, first_line
from casvit_deploy.export.base import ExportJob, ExportSettings, FormatOutput, Progress, SourceArtifact, no_progress
from casvit_deploy.formats import FORMATS, get_format
from casvit_deploy.model.loading import LoadedModel, check_resolution
from casvit_deploy.pipeline.naming import artifact_name
from casvit_deploy.pipeline.record import build_manifest, embedded_metadata
from casvit_deploy.pipeline.staging import output_folder, publish, refuse_overwrite, staging_dir
from casvit_deploy.pipeline.verify import load_check
from casvit_deploy.settings import MAX_BATCH, Form, Head, Precision, Resolution, choice
from casvit_deploy.store import manifests
from casvit_deploy.store.manifests import manifest_path

# The check of a staged artifact before it is published: (staged artifact, its manifest,
# final path) -> the parity record to add; a FAIL record publishes nothing.
Gate = Callable[[Path, Manifest, Path], ParityRecord]


@dataclass
class ExportResult:
    artifact: Path
    manifest: Manifest
    manifest_path: Path
    seconds: float
    notes: list[str] = field(default_factory=list)     # one-line facts for the export summary
    gate: ParityRecord | None = None                    # the gate's record, if one ran


def exporter_for(fmt: Format):
    """The exporter that builds `fmt` (its record's class)."""
    return fmt.exporter()


def check_batch(batch: int) -> None:
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= MAX_BATCH:
        raise UsageError(f"--batch {batch} must be from 1 to {MAX_BATCH}")


def check_dynamic_shape(fmt: Format) -> None:
    """UsageError unless `fmt` can leave the input's height and width free."""
    if not fmt.dynamic_shape:
        offered = ", ".join(f.name for f in FORMATS.values() if f.dynamic_shape)
        raise UsageError(f"{fmt.name} artifacts take a fixed input size here; --dynamic-shape is for {offered} only")


def check_format(fmt: Format, settings: ExportSettings) -> None:
    """Everything about exporting `settings` as `fmt` that can be judged without a model:
    its packages, precision, options class, calibration settings, and its exporter's own
    refusals (`check`)."""
    fmt.require("export")
    check_batch(settings.batch)
    fmt.check_precision(settings.precision)
    if not isinstance(settings.options, fmt.options):
        raise UsageError(f"{fmt.name} export takes {fmt.options.__name__}, not {type(settings.options).__name__}")
    int8 = settings.options.int8
    if int8 is not None and not settings.precision.calibrated:
        raise UsageError("the calibration and keep-float settings apply to --precision int8 or w8a8 only")
    if int8 is not None:
        _check_calibration(fmt, int8)
    if settings.dynamic_shape:
        check_dynamic_shape(fmt)
    if fmt.source is not None:
        source = get_format(fmt.source)
        check_format(source, replace(settings, options=settings.options.carried_to(source.options)))
    fmt.exporter.check(settings)


def _check_calibration(fmt: Format, int8) -> None:
    from casvit_deploy.data.calibration import check_samples

    fmt.calibration_method(int8.calibration_method)
    check_samples(int8.calibration_samples)
    if int8.calibration is not None and not Path(int8.calibration).is_dir():
        raise UsageError(f"--calibration {int8.calibration} is not a folder")
    if int8.data is not None and not Path(int8.data).exists():
        raise UsageError(f"--data {int8.data}: no such folder or file")


def check_model(loaded: LoadedModel, settings: ExportSettings, fmt: Format) -> None:
    """What only the loaded model can tell, before any export: a calibrated precision needs a
    classifier (or a format that judges a backbone's int8 feature maps by agreement, without
    the keep-float search, which follows the logits), the blocks kept float must be the
    model's, and the exporter's own checks (`check_model(settings, loaded)`, where it has
    one: e.g. CoreML's labels, one per class)."""
    int8 = settings.options.int8
    if settings.precision.calibrated and loaded.is_backbone and not fmt.int8_backbone:
        offered = ", ".join(f.name for f in FORMATS.values() if f.int8_backbone)
        raise UsageError("int8 export is for classifiers (judged by agreement of their logits) here; export a "
                         f"backbone in fp32{f', or in int8 as {offered}' if offered else ''}")
    if loaded.is_backbone and int8 is not None and int8.auto_keep_float:
        raise UsageError("--auto-keep-float searches by the agreement of the logits: for classifiers only")
    if settings.precision.calibrated and int8 is not None:
        from casvit_deploy.quantize.targets import check_targets

        check_targets(loaded.model, int8.keep_float)
    own = getattr(fmt.exporter, "check_model", None)
    if own is not None:
        own(settings, loaded)


def _run_exporter(fmt: Format, job: ExportJob) -> FormatOutput:
    try:
        return exporter_for(fmt).export(job)
    except CasvitError:
        raise
    except Exception as err:  # each backend fails in its own way; report its first line
        raise ExportError(f"{fmt.name} export failed: {type(err).__name__}: {first_line(err, 300)}") from err


def _gate(gate: Gate | None, staged: Path, manifest: Manifest, final: Path, fmt: Format) -> ParityRecord | None:
    if gate is None:
        return None
    record = gate(staged, manifest, final)
    if record.status is ParityStatus.FAIL:
        raise ParityFailure(f"{fmt.name} parity check failed ({record.reason}); {final.name} was not published "
                            "(export with --no-check to keep it, then run casvit parity on it)")
    manifest.parity.append(record)
    return record


@dataclass(frozen=True)
class _Target:
    """One artifact to build: the model's deploy form, where it goes and how it is built."""

    loaded: LoadedModel
    fmt: Format
    settings: ExportSettings
    resolution: Resolution
    form: Form
    passes: list[str]
    model: object
    progress: Progress

    def job(self, artifact: Path, options, fmt: Format, source: SourceArtifact | None = None) -> ExportJob:
        preprocessing = Preprocessing.for_resolution(self.resolution)
        job = ExportJob(fmt, self.model, artifact, self.resolution, self.settings.batch, self.settings.dynamic_batch,
                        self.settings.precision, self.loaded.num_classes,
                        embedded_metadata(self.loaded, self.resolution, preprocessing, self.passes), options,
                        preprocessing, check=lambda *a, **k: None, progress=self.progress,
                        outputs=_outputs(self.model), dynamic_shape=self.settings.dynamic_shape, source=source)
        job.check = lambda path, program, head=Head.LOGITS, **how: load_check(path, job, program, head, **how)
        return job


def _outputs(model):
    from casvit_deploy.model.blocks import model_outputs

    return model_outputs(model)


def _source(target: _Target, staging: Path, name: str) -> tuple[SourceArtifact | None, object]:
    """The source artifact of a converted format, exported into `staging` first (its options
    carry over by field name), and the converted format's options with what the source filled
    in (e.g. ORT's opset from its ONNX export)."""
    fmt, options = target.fmt, target.settings.options
    if fmt.source is None:
        return None, options
    source_fmt = get_format(fmt.source)
    filled = options.carried_to(source_fmt.options)
    path = staging / f"{Path(name).stem}{source_fmt.suffix}"
    output = _run_exporter(source_fmt, target.job(path, filled, source_fmt))
    shared = {k: getattr(filled, k) for k in fmt.options.field_names() if hasattr(filled, k)}
    return SourceArtifact(path, output), replace(options, **shared)


def _build(target: _Target, out_dir: Path, name: str, force: bool, gate: Gate | None, started: float):
    """Stage, export, describe, gate and publish one artifact into `out_dir`."""
    final = out_dir / name
    with staging_dir(out_dir) as staging:
        source, options = _source(target, staging, name)
        job = target.job(staging / name, options, target.fmt, source)
        output = _run_exporter(target.fmt, job)
        target.progress("save")
        from casvit_deploy.export.graph import block_outputs

        manifest = build_manifest(target.loaded, job, output, job.artifact, final, target.form, target.passes,
                                  block_outputs(output.program, target.model), time.perf_counter() - started)
        target.progress("parity" if gate else "publish")
        record = _gate(gate, job.artifact, manifest, final, target.fmt)
        manifests.save(manifest, job.artifact)
        publish(job.artifact, final, force)
    return ExportResult(final, manifest, manifest_path(final), manifest.export_seconds, output.notes, record)


def export_checked(loaded: LoadedModel, fmt: Format, out_dir: Path, settings: ExportSettings, resolution: Resolution,
                   form: Form = Form.DEPLOY, disable: tuple[str, ...] = (), force: bool = False,
                   progress: Progress | None = None, gate: Gate | None = None) -> ExportResult:
    """`export_model` for settings that `check_format` and `check_model` already passed."""
    from casvit_deploy.rewrite import deploy_form

    started, progress = time.perf_counter(), progress or no_progress
    name = artifact_name(fmt, loaded.variant, resolution, settings, form, loaded.is_backbone)
    with output_folder(Path(out_dir)) as folder:
        refuse_overwrite(folder / name, force)
        progress("rewrite")
        model, passes = deploy_form(loaded.model, form, tuple(disable))
        target = _Target(loaded, fmt, settings, resolution, form, passes, model, progress)
        return _build(target, folder, name, force, gate, started)


def export_model(loaded: LoadedModel, fmt: Format | str, out_dir: Path, *, resolution: Resolution | int | str,
                 batch: int = 1, dynamic_batch: bool = False, dynamic_shape: bool = False,
                 precision: Precision | str | None = None, form: Form = Form.DEPLOY, disable: tuple[str, ...] = (),
                 force: bool = False, options=None, progress: Progress | None = None,
                 gate: Gate | None = None) -> ExportResult:
    """Export `loaded` (a classifier or a backbone) as `fmt` into `out_dir`: a load-checked
    artifact + manifest, or nothing. `resolution` is the input size (with `dynamic_shape`,
    ONNX only: the size the artifact is checked at; height and width are then free).

    With `gate` (the parity check, pipeline/gate.py), the staged artifact is published only
    if its record is not a failure (ParityFailure otherwise), so an interrupted or failed
    check leaves the previous artifact in place; the record is in the published manifest.
    One export at a time writes to `out_dir` (FolderBusy, a UsageError, for a second).
    Raises UsageError/BackendMissingError for bad requests (before any work) and ExportError
    when the backend fails; an existing artifact is replaced only with `force`.
    """
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    precision = choice(Precision, precision, "--precision") if precision is not None else fmt.default_precision
    settings = ExportSettings(precision, batch, dynamic_batch, dynamic_shape,
                              fmt.options() if options is None else options)
    check_format(fmt, settings)
    check_model(loaded, settings, fmt)
    return export_checked(loaded, fmt, out_dir, settings, check_resolution(resolution), form, disable, force,
                          progress, gate)
