"""`casvit export`: parse the flags into an `ExportRequest`, run the export pipeline, render
its outcomes. Format options default to None (not given); the pipeline fills the format's
defaults. Help text that states a default or a choice is made from the format table and
the options classes, so it cannot drift from them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from casvit_deploy.artifacts.options import DEFAULT_MIN_COSINE
from casvit_deploy.commands.common import (
    BackboneOpt,
    CheckpointOpt,
    EmaOpt,
    JsonOpt,
    ResolutionOpt,
    VariantOpt,
    check_report_paths,
    console,
    emit,
    guarded,
    json_text,
    print_notes,
    split_values,
    to_stdout,
)
from casvit_deploy.commands.render import Status, show
from casvit_deploy.errors import ExportError
from casvit_deploy.formats import ALL, FORMATS
from casvit_deploy.formats.coreml.options import DEFAULT_DEPLOYMENT_TARGET, PALETTE_BITS, palettize_options
from casvit_deploy.formats.executorch.options import Delegate
from casvit_deploy.formats.litert.options import Layout
from casvit_deploy.formats.onnx.options import DEFAULT_OPSET, OPSETS
from casvit_deploy.settings import CalibrationMethod, Form, Precision


def _defaults_text() -> str:
    """e.g. "fp32 (onnx, ort, executorch), fp16 (coreml)": each format's default precision."""
    by_default: dict[str, list[str]] = {}
    for fmt in FORMATS.values():
        by_default.setdefault(fmt.default_precision.value, []).append(fmt.name)
    return ", ".join(f"{p} ({', '.join(names)})" for p, names in by_default.items())


def _calibration_text() -> str:
    """e.g. "percentile, minmax or entropy (onnx, default percentile)" for each format that calibrates."""
    return "; ".join(f"{', '.join(m.value for m in f.calibration_methods)} ({f.name}, default "
                     f"{f.calibration_methods[0].value})" for f in FORMATS.values() if len(f.calibration_methods) > 1)


def _offering(precision: Precision) -> str:
    return ", ".join(f.name for f in FORMATS.values() if precision in f.precisions)


FormatsOpt = Annotated[list[str], typer.Option(
    "--format", "-f", help=f"{', '.join(FORMATS)} or {ALL}; repeat or comma-separate for several.")]
PrecisionOpt = Annotated[Optional[Precision], typer.Option(
    "--precision", "-p", help=f"Default: {_defaults_text()}. int8 ({_offering(Precision.INT8)}): post-training static "
    "quantization, calibrated (CoreML: int8 weights, iOS16+). w8a8 (" + _offering(Precision.W8A8) + "): int8 "
    "weights and activations, calibrated, iOS17+.", case_sensitive=False, show_default=False)]
CalibrationOpt = Annotated[Optional[Path], typer.Option(
    "--calibration", help="int8/w8a8: folder of calibration images (real images from the target domain calibrate "
    "best; default: scikit-image's bundled photographs plus seeded noise).", show_default=False)]
CalibrationSamplesOpt = Annotated[Optional[int], typer.Option(
    "--calibration-samples", help="int8: calibration images to use (default: the whole folder, or 32 for the "
    "default set).", show_default=False)]
CalibrationMethodOpt = Annotated[Optional[CalibrationMethod], typer.Option(
    "--calibration-method", help=f"int8 activation ranges: {_calibration_text()}.", case_sensitive=False,
    show_default=False)]
KeepFloatOpt = Annotated[Optional[list[str]], typer.Option(
    "--keep-float", help="int8: keep these blocks (patch_embed, network.0.0, ..., head, as parity's per-block table "
    "names them) or op kinds (gates, spatial-gates, channel-gates, mixers, mlps, local, residual-adds, depthwise, "
    "multiplies) in float. "
    "Repeatable, comma-separated.", show_default=False)]
AutoKeepFloatOpt = Annotated[Optional[bool], typer.Option(
    "--auto-keep-float", help="int8: also keep float the fewest blocks (greedy, by per-block error) that reach "
    "--min-cosine.", show_default=False)]
MinCosineOpt = Annotated[Optional[float], typer.Option(
    "--min-cosine", help="int8: target of --auto-keep-float, smallest per-sample cosine with fp32 on the calibration "
    f"photographs (default {DEFAULT_MIN_COSINE}).", show_default=False)]
DataOpt = Annotated[Optional[Path], typer.Option(
    "--data", help="Labelled images (a folder of class folders named by index, or a list file of `path label` lines, "
    "as casvit eval reads them) for a search's top-1 budget: int8 --auto-keep-float, CoreML --fp16-safe and "
    "--palettize auto stop at the first choice whose top-1 on them is within --max-top1-drop percentage points of "
    "fp32's (instead of at --min-cosine, the pre-check's flags, or the agreement bar).", show_default=False)]
MaxTop1DropOpt = Annotated[Optional[float], typer.Option(
    "--max-top1-drop", help="With --data: the top-1 budget in percentage points.", metavar="PP", show_default=False)]
QuantizeResidualOpt = Annotated[Optional[bool], typer.Option(
    "--quantize-residual", help="int8: also quantize the residual stream between blocks (faster, less accurate).",
    show_default=False)]
OpsetOpt = Annotated[Optional[int], typer.Option(
    "--opset", help=f"ONNX/ORT: default-domain opset, {OPSETS[0]} to {OPSETS[-1]} (default {DEFAULT_OPSET}; below 20 "
    "GELU stays the erf form; the IR version follows).", show_default=False)]
PalettizeOpt = Annotated[Optional[str], typer.Option(
    "--palettize", help=f"CoreML: k-means palettized weights of {' or '.join(map(str, PALETTE_BITS[:-1]))} bits "
    f"(iOS16+) or {PALETTE_BITS[-1]} bits with one lookup table per group of output channels (iOS18+); auto: the "
    "fewest bits the deployment target offers that pass the agreement bar (or, with --data, --max-top1-drop).",
    metavar="BITS|auto", show_default=False)]
Fp16SafeOpt = Annotated[Optional[bool], typer.Option(
    "--fp16-safe", help="CoreML: keep the blocks that the fp16 pre-check flags (overflow, underflow, lost SNR) in "
    "fp32; with --data, the overflowing ones and then the fewest (lowest SNR first) that bring the top-1 drop "
    "within --max-top1-drop. The manifest records which and why.", show_default=False)]
DeploymentTargetOpt = Annotated[Optional[str], typer.Option(
    "--deployment-target", help=f"CoreML minimum deployment target (default {DEFAULT_DEPLOYMENT_TARGET}).",
    show_default=False)]
DelegateOpt = Annotated[Optional[Delegate], typer.Option(
    "--delegate", help=f"ExecuTorch delegate: {', '.join(d.value for d in Delegate)} (default "
    f"{Delegate.XNNPACK.value}; portable: no delegate, reference kernels, slow; a baseline).", case_sensitive=False,
    show_default=False)]
SpeedChoiceOpt = Annotated[Optional[bool], typer.Option(
    "--speed-choice/--no-speed-choice", help="ExecuTorch int8: time candidate programs here and keep the depthwise "
    "convolutions and/or multiplies float where that is faster on this CPU (default on; the manifest records every "
    "candidate and the CPU).", show_default=False)]
InputLayoutOpt = Annotated[Optional[Layout], typer.Option(
    "--input-layout", help=f"LiteRT: the image input's layout, {' or '.join(x.value for x in Layout)} (default "
    f"{Layout.NCHW.value}; nhwc is what Android camera pipelines and LiteRT's kernels use).", case_sensitive=False,
    show_default=False)]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", "-o", help="Output folder (default: one under models/exports named after variant, size, precision "
    "and form, e.g. models/exports/xs_224_fp32).",
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
    notes: list[str] = field(default_factory=list)
    compression: str = ""  # e.g. "--palettize 4 (iOS18+)"


def _row(outcome) -> Row:
    if outcome.skipped is not None:
        return Row(outcome.format, "skipped", reason=outcome.skipped)
    if not outcome.ok:
        return Row(outcome.format, "failed", parity="fail" if outcome.parity_failed else "", reason=str(outcome.error))
    result = outcome.result
    record = result.gate
    return Row(outcome.format, "ok", str(result.artifact), result.manifest.size_bytes, result.seconds,
               record.status.value if record else "", record.reason if record else "", result.notes,
               result.manifest.details.compression_label())


def _table(rows: list[Row], weights: str) -> Table:
    folders = sorted({str(Path(r.file).parent) for r in rows if r.file})
    caption = weights + (f" · in {', '.join(folders)}" if folders else "")
    table = Table(title="casvit export", caption=caption)
    for column in ("format", "status", "file", "size", "compression", "time", "parity", "reason"):
        table.add_column(column, justify="right" if column in ("size", "time") else "left",
                         overflow="fold", no_wrap=column in ("format", "status", "size", "time"))
    for r in rows:
        size = f"{r.size_bytes / 1e6:.1f} MB" if r.size_bytes else ""
        style = {"ok": "green", "skipped": "yellow"}.get(r.status, "red")
        table.add_row(r.format, f"[{style}]{r.status}[/]", Path(r.file).name if r.file else "", size,
                      r.compression, f"{r.seconds:.1f}s" if r.seconds else "", r.parity, escape(r.reason))
    return table


def _print_summary(rows: list[Row], weights: str) -> None:
    """The table, then each format's one-line notes (e.g. which mobile execution provider
    takes the whole ONNX graph)."""
    show(console(), _table(rows, weights), *(escape(f"{row.format}: {note}") for row in rows for note in row.notes))


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
    opset: OpsetOpt = None,
    image_input: Annotated[Optional[bool], typer.Option("--image-input", help="CoreML: RGB image input, ImageNet normalization folded in.", show_default=False)] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="CoreML: class labels file (one per line), or 'imagenet' for the ImageNet-1k names -> a classifier (softmax probabilities + top label).", metavar="FILE|imagenet", show_default=False)] = None,
    deployment_target: DeploymentTargetOpt = None,
    fp16_output: Annotated[Optional[bool], typer.Option("--fp16-output", help="CoreML fp16: keep the logits float16 (default: cast to float32 inside the program).", show_default=False)] = None,
    author: Annotated[Optional[str], typer.Option("--author", help="CoreML metadata: author.", show_default=False)] = None,
    license: Annotated[Optional[str], typer.Option("--license", help="CoreML metadata: license.", show_default=False)] = None,
    model_version: Annotated[Optional[str], typer.Option("--model-version", help="CoreML metadata: version (default: casvit-deploy's).", show_default=False)] = None,
    description: Annotated[Optional[str], typer.Option("--description", help="CoreML metadata: short description.", show_default=False)] = None,
    allow_portable: Annotated[Optional[bool], typer.Option("--allow-portable", help="ExecuTorch: accept ops left on portable kernels.", show_default=False)] = None,
    delegate: DelegateOpt = None, speed_choice: SpeedChoiceOpt = None,
    input_layout: InputLayoutOpt = None,
    calibration: CalibrationOpt = None, calibration_samples: CalibrationSamplesOpt = None,
    calibration_method: CalibrationMethodOpt = None, keep_float: KeepFloatOpt = None,
    auto_keep_float: AutoKeepFloatOpt = None, min_cosine: MinCosineOpt = None,
    data: DataOpt = None, max_top1_drop: MaxTop1DropOpt = None,
    quantize_residual: QuantizeResidualOpt = None,
    palettize: PalettizeOpt = None, fp16_safe: Fp16SafeOpt = None,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Run the parity check before publishing; an artifact that fails it is not published.")] = True,
    json: JsonOpt = None,
) -> None:
    """Export to ONNX, ORT format, CoreML, ExecuTorch and/or LiteRT: parity-checked artifacts with JSON manifests.

    A classifier gives one output, "logits"; a dense-prediction backbone four feature maps,
    "feat_s4", "feat_s8", "feat_s16", "feat_s32" (strides and channels in the manifest).
    """
    from casvit_deploy.pipeline import ExportRequest, plan, ship

    options = {"opset": opset, "image_input": image_input, "labels": labels, "deployment_target": deployment_target,
               "fp16_output": fp16_output, "author": author, "license": license, "version": model_version,
               "description": description, "allow_portable": allow_portable, "delegate": delegate,
               **palettize_options(palettize), "fp16_safe": fp16_safe, "speed_choice": speed_choice,
               "input_layout": input_layout}
    int8 = {"calibration": calibration, "calibration_samples": calibration_samples,
            "calibration_method": calibration_method, "keep_float": split_values(keep_float) if keep_float else None,
            "auto_keep_float": auto_keep_float, "quantize_residual": quantize_residual, "min_cosine": min_cosine,
            "data": data, "max_top1_drop": max_top1_drop}
    request = ExportRequest(tuple(format), checkpoint, variant, ema, backbone, resolution, batch, dynamic_batch,
                            dynamic_shape, precision, Form.UPSTREAM if no_rewrite else Form.DEPLOY, out, force, check,
                            options, int8)
    checked = plan(request)  # every check that needs no model, before any work
    check_report_paths(json=json)
    with Status("load") as status:
        shipped = ship(checked, progress=status.update, loaded=_load(request, status))
    rows = [_row(o) for o in shipped.outcomes]
    emit(json, lambda: json_text({"weights": shipped.loaded.weights, "results": [asdict(r) for r in rows]}))
    if not to_stdout(json):
        _print_summary(rows, shipped.loaded.weights)
    if not shipped.ok:
        raise ExportError(_failures(shipped))


def _failures(shipped) -> str:
    """One line for every format that failed, e.g. "2 of 4 formats failed: onnx export failed:
    ...; coreml parity check failed (...)"; the line alone when one format was asked for."""
    reasons = "; ".join(" ".join(str(o.error).split()) for o in shipped.failed)
    return reasons if len(shipped.outcomes) == 1 else f"{len(shipped.failed)} of {len(shipped.outcomes)} formats failed: {reasons}"


def _load(request, status: Status):
    from casvit_deploy.model import load_model

    status.update("load model")
    loaded = load_model(request.checkpoint, request.variant, request.ema, backbone=request.backbone)
    print_notes(loaded.notes)
    return loaded
