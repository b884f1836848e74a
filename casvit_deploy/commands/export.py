"""`casvit export`: a checkpoint or variant to verified ONNX, CoreML and ExecuTorch artifacts."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from casvit_deploy.commands.common import (
    BackboneOpt, CheckpointOpt, EmaOpt, JsonOpt, ResolutionOpt, VariantOpt, check_report_paths, console, emit, guarded,
    json_text, print_notes, to_stdout,
)
from casvit_deploy.settings import Delegate, Form, Precision, Resolution

FormatsOpt = Annotated[list[str], typer.Option(
    "--format", "-f", help="onnx, coreml, executorch or all; repeat or comma-separate for several.")]
PrecisionOpt = Annotated[Optional[Precision], typer.Option(
    "--precision", "-p", help="Default: fp16 for CoreML, fp32 otherwise.", case_sensitive=False, show_default=False)]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", "-o", help="Output folder (default models/exports/<variant>_<res>_<precision>[_upstream][_backbone]).",
    show_default=False)]


@dataclass
class Row:
    """One format's outcome, as shown in the summary table."""

    format: str
    status: str
    file: str = ""
    size_bytes: int = 0
    seconds: float = 0.0
    parity: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Request:
    """The export settings common to every format, and the flags of the format options."""

    resolution: Resolution
    batch: int
    dynamic_batch: bool
    dynamic_shape: bool
    precision: Precision | None
    form: Form
    force: bool
    flags: dict


def _progress(status, fmt: str):
    started = time.perf_counter()

    def report(stage: str) -> None:
        status.update(f"[bold]{fmt}[/]: {stage} ({time.perf_counter() - started:.0f}s)")

    return report


def _not_run(artifact: Path, reason: str) -> tuple[str, str]:
    from casvit_deploy.artifacts.files import artifact_sha256
    from casvit_deploy.artifacts.manifest import Manifest, ParityRecord

    Manifest.append_parity(artifact, ParityRecord("not run", artifact_sha256(artifact), reason=reason))
    return "not run", reason


def post_export_parity(artifact: Path, loaded) -> tuple[str, str]:
    """(status, reason) of the parity check run after an export; recorded in the manifest
    ("not run" with the reason when the check cannot run)."""
    from casvit_deploy.errors import CasvitError

    try:
        from casvit_deploy.parity import check_artifact
    except ImportError as err:
        return _not_run(artifact, f"parity checker unavailable ({err})")
    try:
        report = check_artifact(artifact, loaded)
    except CasvitError as err:
        return _not_run(artifact, str(err))
    return ("pass" if report.passed else "fail"), ""


def _export_one(loaded, fmt, request: Request, out: Optional[Path], check: bool, status) -> Row:
    from casvit_deploy.artifacts.options import from_flags
    from casvit_deploy.export import default_out_dir, export_model

    precision = request.precision or fmt.default_precision
    folder = out or default_out_dir(loaded.variant, request.resolution, precision, request.form, loaded.is_backbone)
    result = export_model(loaded, fmt, folder, resolution=request.resolution, batch=request.batch,
                          dynamic_batch=request.dynamic_batch, dynamic_shape=request.dynamic_shape,
                          precision=precision, form=request.form,
                          force=request.force, options=from_flags(fmt.options, request.flags),
                          progress=_progress(status, fmt.name))
    row = Row(fmt.name, "ok", str(result.artifact), result.manifest.size_bytes, result.seconds)
    if check:
        status.update(f"[bold]{fmt.name}[/]: parity")
        row.parity, row.reason = post_export_parity(result.artifact, loaded)
        if row.parity == "fail":
            row.status, row.reason = "failed", "parity check failed (see the manifest's parity entry)"
    return row


def _table(rows: list[Row], weights: str) -> Table:
    folders = sorted({str(Path(r.file).parent) for r in rows if r.file})
    caption = weights + (f" · in {', '.join(folders)}" if folders else "")
    table = Table(title="casvit export", caption=caption)
    for column in ("format", "status", "file", "size", "time", "parity", "reason"):
        table.add_column(column, justify="right" if column in ("size", "time") else "left",
                         overflow="fold", no_wrap=column in ("format", "status", "size", "time"))
    for r in rows:
        size = f"{r.size_bytes / 1e6:.1f} MB" if r.size_bytes else ""
        style = "green" if r.status == "ok" else "red"
        table.add_row(r.format, f"[{style}]{r.status}[/]", Path(r.file).name if r.file else "", size,
                      f"{r.seconds:.1f}s" if r.seconds else "", r.parity, r.reason)
    return table


def _run_all(loaded, formats, request: Request, out, check: bool) -> list[Row]:
    """Each format on its own: a failing one is recorded and the others still run."""
    from casvit_deploy.errors import CasvitError

    rows = []
    with Console(stderr=True).status("exporting") as status:
        for fmt in formats:
            try:
                rows.append(_export_one(loaded, fmt, request, out, check, status))
            except CasvitError as err:
                if len(formats) == 1:
                    raise
                rows.append(Row(fmt.name, "failed", reason=str(err)))
    return rows


@guarded
def export(
    format: FormatsOpt,
    checkpoint: CheckpointOpt = None, variant: VariantOpt = None, ema: EmaOpt = False,
    backbone: BackboneOpt = False, resolution: ResolutionOpt = None,
    batch: Annotated[int, typer.Option("--batch", help="Fixed batch size of the artifact.")] = 1,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch", help="Leave the batch dimension free (ONNX, ExecuTorch).")] = False,
    dynamic_shape: Annotated[bool, typer.Option("--dynamic-shape", help="ONNX: leave height and width free (the caller feeds multiples of 32); --resolution is the size it is checked at.")] = False,
    precision: PrecisionOpt = None,
    no_rewrite: Annotated[bool, typer.Option("--no-rewrite", help="Export the upstream form, not the deploy form.")] = False,
    out: OutOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing artifact.")] = False,
    image_input: Annotated[bool, typer.Option("--image-input", help="CoreML: RGB image input, ImageNet normalization folded in.")] = False,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="CoreML: class labels file (one per line) -> classifier.", show_default=False)] = None,
    deployment_target: Annotated[str, typer.Option("--deployment-target", help="CoreML minimum deployment target.")] = "iOS16",
    allow_portable: Annotated[bool, typer.Option("--allow-portable", help="ExecuTorch: accept ops left on portable kernels.")] = False,
    delegate: Annotated[Delegate, typer.Option("--delegate", help="ExecuTorch delegate: xnnpack, coreml, or portable (no delegate: reference kernels, slow; a baseline).", case_sensitive=False)] = Delegate.XNNPACK,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Run the parity check after exporting.")] = True,
    json: JsonOpt = None,
) -> None:
    """Export to ONNX, CoreML and/or ExecuTorch: verified artifacts with JSON manifests.
    A classifier gives one output, "logits"; a dense-prediction backbone four feature maps,
    "feat_s4", "feat_s8", "feat_s16", "feat_s32" (strides and channels in the manifest)."""
    from casvit_deploy.artifacts.formats import parse_formats
    from casvit_deploy.export import check_dynamic_shape, check_settings
    from casvit_deploy.model import load_model

    formats = parse_formats(format)
    check_report_paths(json=json)
    size = check_settings(resolution, batch)
    for fmt in formats if dynamic_shape else ():
        check_dynamic_shape(fmt)
    with Console(stderr=True).status("load"):
        loaded = load_model(checkpoint, variant, ema, backbone=backbone)
    print_notes(loaded.notes)
    flags = {"image_input": image_input, "labels": labels, "deployment_target": deployment_target,
             "allow_portable": allow_portable, "delegate": delegate}
    request = Request(size or loaded.native_resolution, batch, dynamic_batch, dynamic_shape, precision,
                      Form.UPSTREAM if no_rewrite else Form.DEPLOY, force, flags)
    rows = _run_all(loaded, formats, request, out, check)
    emit(json, lambda: json_text({"weights": loaded.weights, "results": [asdict(r) for r in rows]}))
    if not to_stdout(json):
        console().print(_table(rows, loaded.weights))
    if any(r.status != "ok" for r in rows):
        raise typer.Exit(1)
