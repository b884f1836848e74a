"""`export_model`: one loaded model to one load-checked artifact plus manifest, atomically."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from casvit_deploy.artifacts.formats import Format, get_format
from casvit_deploy.artifacts.manifest import Manifest, manifest_path
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.errors import CasvitError, ExportError, UsageError
from casvit_deploy.export.base import ExportJob, Progress, no_progress
from casvit_deploy.export.graph import block_outputs
from casvit_deploy.export.record import build_manifest, embedded_metadata
from casvit_deploy.export.registry import exporter_for
from casvit_deploy.export.staging import output_folder, publish, refuse_overwrite, staging_dir
from casvit_deploy.export.verify import load_check
from casvit_deploy.model.loading import LoadedModel, check_resolution
from casvit_deploy.paths import EXPORTS
from casvit_deploy.rewrite import deploy_form
from casvit_deploy.settings import Form, Precision, choice

MAX_BATCH = 4096
Verify = Callable[[Path, Path], None]  # (staged artifact, final path): may add to the staged manifest


@dataclass
class ExportResult:
    artifact: Path
    manifest: Manifest
    manifest_path: Path
    seconds: float


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
    if getattr(loaded.model, "fork_feat", False):
        raise UsageError("this checkpoint is a detection/segmentation backbone (4 feature maps); "
                         "export supports classifiers only")
    return exporter_for(fmt)


def _run_exporter(fmt: Format, exporter, job: ExportJob):
    try:
        return exporter.export(job)
    except CasvitError:
        raise
    except Exception as err:  # each backend fails in its own way; report its first line
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise ExportError(f"{fmt.name} export failed: {type(err).__name__}: {reason}") from err


def export_model(loaded: LoadedModel, fmt: Format | str, out_dir: Path, *, resolution: int, batch: int = 1,
                 dynamic_batch: bool = False, precision: Precision | str | None = None, form: Form = Form.DEPLOY,
                 disable: tuple[str, ...] = (), force: bool = False, options=None,
                 progress: Progress | None = None, verify: Verify | None = None) -> ExportResult:
    """Export `loaded` as `fmt` into `out_dir`: a load-checked artifact + manifest, or nothing.

    `verify(staged, final)` runs on the finished artifact before it is published (the
    post-export parity check), so an interrupted check leaves the previous artifact in
    place. Raises UsageError/BackendMissingError for bad requests (before any work) and
    ExportError when the backend fails; an existing artifact is replaced only with `force`.
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
                            loaded.num_classes, embedded_metadata(loaded, resolution, preprocessing, passes), options,
                            preprocessing, check=lambda path, program: load_check(path, job, program),
                            progress=progress)
            output = _run_exporter(fmt, exporter, job)
            progress("save")
            manifest = build_manifest(loaded, fmt.name, job, output, job.artifact, final, form, passes,
                                      block_outputs(output.program, model), time.perf_counter() - started)
            manifest.save(job.artifact)
            if verify is not None:
                verify(job.artifact, final)
                manifest = Manifest.load(job.artifact)
            publish(job.artifact, final, force)
    return ExportResult(final, manifest, manifest_path(final), manifest.export_seconds)
