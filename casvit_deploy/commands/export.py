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
    CheckpointOpt, EmaOpt, JsonOpt, ResolutionOpt, VariantOpt, check_report_paths, console, emit, guarded,
    json_text, to_stdout,
)
from casvit_deploy.settings import Delegate, Form, Precision

FormatsOpt = Annotated[list[str], typer.Option(
    "--format", "-f", help="onnx, coreml, executorch or all; repeat or comma-separate for several.")]
PrecisionOpt = Annotated[Optional[Precision], typer.Option(
    "--precision", "-p", help="Default: fp16 for CoreML, fp32 otherwise.", case_sensitive=False, show_default=False)]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", "-o", help="Output folder (default models/exports/<variant>_<res>_<precision>[_upstream]).",
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

    resolution: int
    batch: int
    dynamic_batch: bool
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


def post_export_parity(staged: Path, final: Path, loaded) -> tuple[str, str]:
    """(status, reason) of the parity check of a finished artifact, run before it is
    published (so an interrupted check leaves the previous artifact in place) and recorded
    in its manifest ("not run" with the reason when the check cannot run)."""
    from casvit_deploy.errors import CasvitError

    try:
        from casvit_deploy.parity import check_artifact, record_result
    except ImportError as err:
        return _not_run(staged, f"parity checker unavailable ({err})")
    try:
        report = check_artifact(staged, loaded, record=False)
    except CasvitError as err:
        return _not_run(staged, str(err))
    report.artifact = str(final)
    record_result(staged, report, report.integrity.expected_sha256)
    return ("pass" if report.passed else "fail"), ""


def _export_one(loaded, fmt, request: Request, out: Optional[Path], check: bool, status) -> Row:
    from casvit_deploy.artifacts.options import from_flags
    from casvit_deploy.export import default_out_dir, export_model

    precision = request.precision or fmt.default_precision
    folder = out or default_out_dir(loaded.variant, request.resolution, precision, request.form)
    parity = {}

    def verify(staged: Path, final: Path) -> None:
        if not check:
            _not_run(staged, "skipped with --no-check")
            return
        status.update(f"[bold]{fmt.name}[/]: parity")
        parity["outcome"] = post_export_parity(staged, final, loaded)

    result = export_model(loaded, fmt, folder, resolution=request.resolution, batch=request.batch,
                          dynamic_batch=request.dynamic_batch, precision=precision, form=request.form,
                          force=request.force, options=from_flags(fmt.options, request.flags),
                          progress=_progress(status, fmt.name), verify=verify)
    row = Row(fmt.name, "ok", str(result.artifact), result.manifest.size_bytes, result.seconds)
    if "outcome" in parity:
        row.parity, row.reason = parity["outcome"]
        if row.parity == "fail":
            row.status, row.reason = "failed", "parity check failed (see the manifest's parity entry)"
    return row


def _option_defaults(fmt) -> dict:
    import dataclasses

    return {f.name: f.default for f in dataclasses.fields(fmt.options)}


def check_format_flags(formats, flags: dict) -> None:
    """UsageError for a format option set away from its default that no chosen format takes
    (e.g. --labels with -f onnx), and for a --labels file that is not there."""
    from casvit_deploy.artifacts.formats import FORMATS
    from casvit_deploy.errors import UsageError

    for name, value in flags.items():
        owners = [f for f in FORMATS.values() if name in _option_defaults(f)]
        if not owners or value == _option_defaults(owners[0])[name] or any(f in owners for f in formats):
            continue
        flag = "--" + name.replace("_", "-")
        raise UsageError(f"{flag} applies to {' and '.join(f.name for f in owners)} only, which is not among the "
                         f"formats chosen; add -f {owners[0].name} or drop {flag}")
    labels = flags.get("labels")
    if labels is not None and not Path(labels).is_file():
        raise UsageError(f"--labels {labels}: no such file")


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
    resolution: ResolutionOpt = None,
    batch: Annotated[int, typer.Option("--batch", help="Fixed batch size of the artifact.")] = 1,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch", help="Leave the batch dimension free (ONNX, ExecuTorch).")] = False,
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
    """Export to ONNX, CoreML and/or ExecuTorch: verified artifacts with JSON manifests."""
    from casvit_deploy.artifacts.formats import parse_formats
    from casvit_deploy.export import check_settings
    from casvit_deploy.model import load_model

    formats = parse_formats(format)
    check_report_paths(json=json)
    check_settings(resolution, batch)
    flags = {"image_input": image_input, "labels": labels, "deployment_target": deployment_target,
             "allow_portable": allow_portable, "delegate": delegate}
    check_format_flags(formats, flags)
    with Console(stderr=True).status("load"):
        loaded = load_model(checkpoint, variant, ema)
    request = Request(loaded.input_resolution(resolution), batch, dynamic_batch, precision,
                      Form.UPSTREAM if no_rewrite else Form.DEPLOY, force, flags)
    rows = _run_all(loaded, formats, request, out, check)
    emit(json, lambda: json_text({"weights": loaded.weights, "results": [asdict(r) for r in rows]}))
    if not to_stdout(json):
        console().print(_table(rows, loaded.weights))
    if any(r.status != "ok" for r in rows):
        raise typer.Exit(1)
