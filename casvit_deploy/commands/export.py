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
    CheckpointOpt, EmaOpt, JsonOpt, ResolutionOpt, VariantOpt, console, guarded, print_json,
)

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="onnx, coreml, executorch or all.")]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", help="Fixed batch size of the artifact.")]
PrecisionOpt = Annotated[Optional[str], typer.Option(
    "--precision", help="fp32 or fp16 (default: fp16 for CoreML, fp32 otherwise).", show_default=False)]
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


def _formats(name: str) -> list[str]:
    from casvit_deploy.export import FORMATS, get_exporter

    return list(FORMATS) if name.lower() == "all" else [get_exporter(name).format]


def _progress(status, fmt: str):
    started = time.perf_counter()

    def report(stage: str) -> None:
        status.update(f"[bold]{fmt}[/]: {stage} ({time.perf_counter() - started:.0f}s)")

    return report


def _export_one(loaded, fmt: str, settings: dict, out: Optional[Path], check: bool, status) -> Row:
    from casvit_deploy.export import default_out_dir, default_precision, export_model
    from casvit_deploy.export.check import check_parity

    settings = dict(settings)
    precision = settings.pop("precision") or default_precision(fmt)
    folder = out or default_out_dir(loaded.variant, settings["resolution"], precision, settings["rewrite"])
    result = export_model(loaded, fmt, folder, precision=precision, progress=_progress(status, fmt), **settings)
    row = Row(fmt, "ok", str(result.artifact), result.manifest["size_bytes"], result.seconds)
    if check:
        status.update(f"[bold]{fmt}[/]: parity")
        parity = check_parity(result.artifact, loaded)
        row.parity = parity["status"]
        row.reason = parity.get("reason", "")
        if parity["status"] == "fail":
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
        table.add_row(r.format, f"[{style}]{r.status}[/]", Path(r.file).name if r.file else "", size, f"{r.seconds:.1f}s" if r.seconds else "",
                      r.parity, r.reason)
    return table


def _run_all(loaded, formats: list[str], settings: dict, out, check: bool) -> list[Row]:
    """Each format on its own: a failing one is recorded and the others still run."""
    from casvit_deploy.errors import CasvitError

    rows = []
    with Console(stderr=True).status("exporting") as status:
        for fmt in formats:
            try:
                rows.append(_export_one(loaded, fmt, settings, out, check, status))
            except CasvitError as err:
                if len(formats) == 1:
                    raise
                rows.append(Row(fmt, "failed", reason=str(err)))
    return rows


@guarded
def export(
    format: FormatOpt,
    checkpoint: CheckpointOpt = None, variant: VariantOpt = None, ema: EmaOpt = False,
    resolution: ResolutionOpt = None, batch: BatchOpt = 1,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch", help="Leave the batch dimension free (ONNX, ExecuTorch).")] = False,
    precision: PrecisionOpt = None,
    no_rewrite: Annotated[bool, typer.Option("--no-rewrite", help="Export the upstream form, not the deploy form.")] = False,
    out: OutOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing artifact.")] = False,
    image_input: Annotated[bool, typer.Option("--image-input", help="CoreML: RGB image input, ImageNet normalization folded in.")] = False,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="CoreML: class labels file (one per line) -> classifier.", show_default=False)] = None,
    deployment_target: Annotated[str, typer.Option("--deployment-target", help="CoreML minimum deployment target.")] = "iOS16",
    allow_portable: Annotated[bool, typer.Option("--allow-portable", help="ExecuTorch: accept ops left on portable kernels.")] = False,
    backend: Annotated[str, typer.Option("--backend", help="ExecuTorch delegate: xnnpack, coreml, or portable (no delegate: reference kernels, slow; a baseline).")] = "xnnpack",
    check: Annotated[bool, typer.Option("--check/--no-check", help="Run the parity check after exporting.")] = True,
    json: JsonOpt = False,
) -> None:
    """Export to ONNX, CoreML and/or ExecuTorch: verified artifacts with JSON manifests."""
    from casvit_deploy.errors import UsageError
    from casvit_deploy.pipeline import check_resolution, load_model

    formats = _formats(format)
    if batch < 1:
        raise UsageError(f"--batch {batch} must be at least 1")
    if resolution is not None:
        check_resolution(resolution)
    if precision is not None and precision not in ("fp32", "fp16"):
        raise UsageError(f"--precision {precision!r}: choose fp32 or fp16")
    with Console(stderr=True).status("load"):
        loaded = load_model(checkpoint, variant, ema)
    settings = {"resolution": check_resolution(resolution or loaded.native_resolution), "batch": batch,
                "dynamic_batch": dynamic_batch, "precision": precision, "rewrite": not no_rewrite, "force": force,
                "options": {"image_input": image_input, "labels": labels, "deployment_target": deployment_target,
                            "allow_portable": allow_portable, "backend": backend}}
    rows = _run_all(loaded, formats, settings, out, check)
    if json:
        print_json({"weights": loaded.weights, "results": [asdict(r) for r in rows]})
    else:
        console().print(_table(rows, loaded.weights))
    if any(r.status != "ok" for r in rows):
        raise typer.Exit(1)
