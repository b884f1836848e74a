"""`export_model`: one loaded model to one verified artifact plus manifest, atomically."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from casvit_deploy.errors import CasvitError, ExportError, UsageError
from casvit_deploy.export.base import ExportJob, Progress, no_progress
from casvit_deploy.export.graph import block_outputs
from casvit_deploy.export.manifest import build_manifest, preprocessing, tool_versions
from casvit_deploy.manifests import write_json_atomic
from casvit_deploy.export.registry import get_exporter, require_backend
from casvit_deploy.export.staging import ensure_writable, publish, refuse_overwrite, staging_dir
from casvit_deploy.pipeline import LoadedModel, check_resolution, deploy_form
from casvit_deploy.manifests import manifest_path

EXPORT_ROOT = Path("models/exports")


@dataclass
class ExportResult:
    artifact: Path
    manifest: dict
    manifest_path: Path
    seconds: float


def artifact_stem(variant: str, resolution: int, precision: str, rewrite: bool = True,
                  batch: int = 1, dynamic_batch: bool = False) -> str:
    """e.g. casvit_xs_224_fp32; suffixes mark upstream form, fixed batch > 1, dynamic batch."""
    stem = f"casvit_{variant}_{resolution}_{precision}"
    stem += "" if rewrite else "_upstream"
    stem += "_dynamic" if dynamic_batch else (f"_b{batch}" if batch > 1 else "")
    return stem


def default_out_dir(variant: str, resolution: int, precision: str, rewrite: bool = True) -> Path:
    """models/exports/<variant>_<resolution>_<precision>[_upstream]/"""
    return EXPORT_ROOT / f"{variant}_{resolution}_{precision}{'' if rewrite else '_upstream'}"


def _validate(loaded: LoadedModel, fmt: str, resolution: int, batch: int, precision: str):
    exporter = get_exporter(fmt)
    check_resolution(resolution)
    if batch < 1:
        raise UsageError(f"--batch {batch} must be at least 1")
    if precision not in exporter.precisions:
        raise UsageError(f"{exporter.format} export supports precision {' or '.join(exporter.precisions)}, "
                         f"not {precision!r}")
    if getattr(loaded.model, "fork_feat", False):
        raise UsageError("this checkpoint is a detection/segmentation backbone (4 feature maps); "
                         "export supports classifiers only")
    require_backend(exporter)
    return exporter


def _metadata(loaded: LoadedModel, resolution: int, passes: list[str]) -> dict[str, str]:
    """String metadata embedded inside the artifact itself (ONNX props, CoreML user metadata)."""
    pre = preprocessing(resolution)
    tools = {f"version_{k}": str(v) for k, v in tool_versions().items() if v}
    return {"variant": loaded.variant, "resolution": str(resolution), "weights": loaded.weights,
            "checkpoint_sha256": loaded.checkpoint_sha256 or "", "num_classes": str(loaded.num_classes),
            "mean": ",".join(map(str, pre["mean"])), "std": ",".join(map(str, pre["std"])),
            "passes": ",".join(passes), **tools}


def _run_exporter(exporter, job: ExportJob):
    try:
        return exporter.export(job)
    except CasvitError:
        raise
    except Exception as err:  # each backend fails in its own way; report its first line
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise ExportError(f"{exporter.format} export failed: {type(err).__name__}: {reason}") from err


def export_model(loaded: LoadedModel, fmt: str, out_dir: Path, *, resolution: int, batch: int = 1,
                 dynamic_batch: bool = False, precision: str = "fp32", rewrite: bool = True,
                 disable: tuple[str, ...] = (), force: bool = False, options: dict | None = None,
                 progress: Progress | None = None) -> ExportResult:
    """Export `loaded` as `fmt` into `out_dir`: verified artifact + manifest, or nothing.

    Raises UsageError/BackendMissingError for bad requests (before any work) and
    ExportError when the backend fails; an existing artifact is replaced only with `force`.
    """
    progress = progress or no_progress
    started = time.perf_counter()
    exporter = _validate(loaded, fmt, resolution, batch, precision)
    out_dir = ensure_writable(Path(out_dir))
    final = out_dir / (artifact_stem(loaded.variant, resolution, precision, rewrite, batch, dynamic_batch)
                       + exporter.suffix)
    refuse_overwrite(final, force)
    progress("rewrite")
    model, passes = deploy_form(loaded, rewrite, tuple(disable))
    with staging_dir(out_dir) as staging:
        job = ExportJob(model, staging / final.name, resolution, batch, dynamic_batch, precision,
                        loaded.num_classes, _metadata(loaded, resolution, passes), dict(options or {}), progress)
        output = _run_exporter(exporter, job)
        progress("save")
        blocks = block_outputs(output.program, model)
        manifest = build_manifest(loaded, job, output, job.artifact, passes, rewrite, blocks,
                                  time.perf_counter() - started)
        manifest["file"] = final.name
        staged_manifest = staging / "manifest.json"
        write_json_atomic(staged_manifest, manifest)
        publish(job.artifact, final, staged_manifest, force)
    return ExportResult(final, manifest, manifest_path(final), manifest["export_seconds"])
