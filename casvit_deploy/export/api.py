"""`export_model`: one loaded model to one load-checked artifact plus manifest, atomically."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from casvit_deploy.artifacts.formats import FORMATS, Format, get_format
from casvit_deploy.artifacts.manifest import Manifest, manifest_path
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.errors import CasvitError, ExportError, UsageError
from casvit_deploy.export.base import ExportJob, Progress, no_progress
from casvit_deploy.export.graph import block_outputs
from casvit_deploy.export.record import build_manifest, embedded_metadata
from casvit_deploy.export.registry import exporter_for
from casvit_deploy.export.staging import ensure_writable, publish, refuse_overwrite, staging_dir
from casvit_deploy.export.verify import load_check
from casvit_deploy.model.blocks import model_outputs
from casvit_deploy.model.loading import LoadedModel, check_resolution
from casvit_deploy.paths import EXPORTS
from casvit_deploy.rewrite import deploy_form
from casvit_deploy.settings import Form, Precision, Resolution, choice

MAX_BATCH = 4096


@dataclass
class ExportResult:
    artifact: Path
    manifest: Manifest
    manifest_path: Path
    seconds: float


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


def _validate(fmt: Format, batch: int, precision: Precision, options, dynamic_shape: bool):
    check_settings(None, batch)
    fmt.check_precision(precision)
    if not isinstance(options, fmt.options):
        raise UsageError(f"{fmt.name} export takes {fmt.options.__name__}, not {type(options).__name__}")
    if dynamic_shape:
        check_dynamic_shape(fmt)
    return exporter_for(fmt)


def _run_exporter(fmt: Format, exporter, job: ExportJob):
    try:
        return exporter.export(job)
    except CasvitError:
        raise
    except Exception as err:  # each backend fails in its own way; report its first line
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise ExportError(f"{fmt.name} export failed: {type(err).__name__}: {reason}") from err


def export_model(loaded: LoadedModel, fmt: Format | str, out_dir: Path, *, resolution: Resolution | int | str,
                 batch: int = 1, dynamic_batch: bool = False, dynamic_shape: bool = False,
                 precision: Precision | str | None = None, form: Form = Form.DEPLOY, disable: tuple[str, ...] = (),
                 force: bool = False, options=None, progress: Progress | None = None) -> ExportResult:
    """Export `loaded` (a classifier or a backbone) as `fmt` into `out_dir`: a load-checked
    artifact + manifest, or nothing. `resolution` is the input size (with `dynamic_shape`,
    ONNX only: the size the artifact is checked at; height and width are then free).

    Raises UsageError/BackendMissingError for bad requests (before any work) and
    ExportError when the backend fails; an existing artifact is replaced only with `force`.
    """
    progress = progress or no_progress
    started = time.perf_counter()
    resolution = check_resolution(resolution)
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    precision = choice(Precision, precision, "--precision") if precision is not None else fmt.default_precision
    options = fmt.options() if options is None else options
    exporter = _validate(fmt, batch, precision, options, dynamic_shape)
    out_dir = ensure_writable(Path(out_dir))
    stem = artifact_stem(loaded.variant, resolution, precision, form, batch, dynamic_batch,
                         dynamic_shape=dynamic_shape, backbone=loaded.is_backbone)
    final = out_dir / (stem + fmt.suffix)
    refuse_overwrite(final, force)
    progress("rewrite")
    model, passes = deploy_form(loaded.model, form, tuple(disable))
    preprocessing = Preprocessing.for_resolution(resolution)
    with staging_dir(out_dir) as staging:
        job = ExportJob(model, staging / final.name, resolution, batch, dynamic_batch, precision,
                        loaded.num_classes, embedded_metadata(loaded, resolution, preprocessing, passes), options,
                        preprocessing, check=lambda path, program: load_check(path, job, program), progress=progress,
                        outputs=model_outputs(model), dynamic_shape=dynamic_shape)
        output = _run_exporter(fmt, exporter, job)
        progress("save")
        manifest = build_manifest(loaded, fmt.name, job, output, job.artifact, final, form, passes,
                                  block_outputs(output.program, model), time.perf_counter() - started)
        manifest.save(job.artifact)
        publish(job.artifact, final, force)
    return ExportResult(final, manifest, manifest_path(final), manifest.export_seconds)
