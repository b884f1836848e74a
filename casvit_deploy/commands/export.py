"""`casvit export`: a checkpoint or variant to verified ONNX, ORT, CoreML and ExecuTorch artifacts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from casvit_deploy.commands.common import (
    BackboneOpt, CheckpointOpt, EmaOpt, JsonOpt, ResolutionOpt, VariantOpt, check_report_paths, console, emit,
    guarded, json_text, print_notes, split_values, to_stdout,
)
from casvit_deploy.commands.render import Status, show
from casvit_deploy.settings import CalibrationMethod, Delegate, Form, Precision, Resolution

FormatsOpt = Annotated[list[str], typer.Option(
    "--format", "-f", help="onnx, ort, coreml, executorch or all; repeat or comma-separate for several.")]
PrecisionOpt = Annotated[Optional[Precision], typer.Option(
    "--precision", "-p", help="Default: fp16 for CoreML, fp32 otherwise. int8 (ONNX, ExecuTorch): post-training "
    "static quantization, calibrated; int8 (CoreML): int8 weights, iOS16+. w8a8 (CoreML): int8 weights and "
    "activations, calibrated, iOS17+.", case_sensitive=False, show_default=False)]
CalibrationOpt = Annotated[Optional[Path], typer.Option(
    "--calibration", help="int8/w8a8 (also the CoreML fp16 pre-check): folder of calibration images (real images from the target domain calibrate best; "
    "default: scikit-image's bundled photographs plus seeded noise).", show_default=False)]
CalibrationSamplesOpt = Annotated[Optional[int], typer.Option(
    "--calibration-samples", help="int8: calibration images to use (default: the whole folder, or 32 for the "
    "default set).", show_default=False)]
CalibrationMethodOpt = Annotated[Optional[CalibrationMethod], typer.Option(
    "--calibration-method", help="int8 activation ranges: histogram or minmax (ExecuTorch, default histogram); "
    "percentile, minmax or entropy (ONNX, default percentile).", case_sensitive=False, show_default=False)]
KeepFloatOpt = Annotated[Optional[list[str]], typer.Option(
    "--keep-float", help="int8: keep these blocks (patch_embed, network.0.0, ..., head, as parity's per-block table "
    "names them) or op kinds (gates, spatial-gates, channel-gates, mixers, mlps, local, residual-adds) in float. "
    "Repeatable, comma-separated.", show_default=False)]
PalettizeOpt = Annotated[Optional[int], typer.Option(
    "--palettize", help="CoreML: k-means palettized weights of 8 or 6 bits (iOS16+) or 4 bits with one lookup "
    "table per group of output channels (iOS18+).", show_default=False)]
Fp16SafeOpt = Annotated[bool, typer.Option(
    "--fp16-safe", help="CoreML: keep the blocks that the fp16 pre-check flags (overflow, underflow, lost SNR) in "
    "fp32; the manifest records which and why.")]
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
    notes: list[str] = field(default_factory=list)
    compression: str = ""  # e.g. "--palettize 4 (iOS18+)"


@dataclass(frozen=True)
class Request:
    """The export settings common to every format, and each format's options."""

    resolution: Resolution
    batch: int
    dynamic_batch: bool
    dynamic_shape: bool
    precision: Precision | None
    form: Form
    force: bool
    options: dict  # format name -> its options dataclass


def _not_run(artifact: Path, reason: str) -> tuple[str, str]:
    from casvit_deploy.artifacts.files import artifact_sha256
    from casvit_deploy.artifacts.manifest import Manifest, ParityRecord

    Manifest.append_parity(artifact, ParityRecord("not run", artifact_sha256(artifact), reason=reason))
    return "not run", reason


def parity_gate(loaded, check: bool = True, progress=None):
    """The export gate: (status, reason) of the parity check of a staged artifact, recorded
    in its manifest ("not run" with the reason when the check cannot run or `check` is
    off); "fail" stops the artifact from being published."""
    from casvit_deploy.errors import CasvitError

    if not check:
        return lambda staged, final: _not_run(staged, "skipped with --no-check")

    def gate(staged: Path, final: Path) -> tuple[str, str]:
        try:
            from casvit_deploy.parity import check_artifact
        except ImportError as err:
            return _not_run(staged, f"parity checker unavailable ({err})")
        try:
            report = check_artifact(staged, loaded, report_as=final, progress=progress)
        except CasvitError as err:
            return _not_run(staged, str(err))
        return ("pass", "") if report.passed else ("fail", report.failures[0])

    return gate


def _export_one(loaded, fmt, request: Request, out: Optional[Path], check: bool, status) -> Row:
    from casvit_deploy.errors import ParityFailure
    from casvit_deploy.export import default_out_dir, export_model

    precision = request.precision or fmt.default_precision
    folder = out or default_out_dir(loaded.variant, request.resolution, precision, request.form, loaded.is_backbone)

    def stage(text: str) -> None:
        status.update(f"[bold]{fmt.name}[/]: {text}")

    try:
        result = export_model(loaded, fmt, folder, resolution=request.resolution, batch=request.batch,
                              dynamic_batch=request.dynamic_batch, dynamic_shape=request.dynamic_shape,
                              precision=precision, form=request.form,
                              force=request.force, options=request.options[fmt.name], progress=stage,
                              gate=parity_gate(loaded, check, lambda text: stage(f"parity {text}")))
    except ParityFailure as err:
        return Row(fmt.name, "failed", parity="fail", reason=str(err))
    parity, reason = result.gate or ("", "")
    return Row(fmt.name, "ok", str(result.artifact), result.manifest.size_bytes, result.seconds, parity, reason,
               result.notes, _compression_label(result.manifest.details))


def _option_defaults(fmt) -> dict:
    import dataclasses

    return {f.name: f.default for f in dataclasses.fields(fmt.options)}


def check_format_flags(formats, flags: dict) -> None:
    """UsageError for a format option given (not None) and set away from its default that no
    chosen format takes (e.g. --labels with -f onnx), and for a --labels file that is not
    there or not a regular file."""
    from casvit_deploy.artifacts.formats import FORMATS
    from casvit_deploy.errors import UsageError
    from casvit_deploy.export.labels import check_source

    for name, value in flags.items():
        owners = [f for f in FORMATS.values() if name in _option_defaults(f)]
        if value is None or not owners or value == _option_defaults(owners[0])[name] or any(
                f in owners for f in formats):
            continue
        flag = "--" + name.replace("_", "-")
        raise UsageError(f"{flag} applies to {' and '.join(f.name for f in owners)} only, which is not among the "
                         f"formats chosen; add -f {owners[0].name} or drop {flag}")
    check_source(flags.get("labels"))


def _compression_label(details: dict) -> str:
    """e.g. "--palettize 4 (iOS18+)", "fp16-safe: 2 blocks fp32", or ""."""
    parts = []
    if "compression" in details:
        parts.append(f"{details['compression']['flag']} ({details['compression']['minimum_target']}+)")
    if details.get("fp16_safe", {}).get("kept_fp32"):
        parts.append(f"fp16-safe: {len(details['fp16_safe']['kept_fp32'])} blocks fp32")
    return ", ".join(parts)


def _table(rows: list[Row], weights: str) -> Table:
    folders = sorted({str(Path(r.file).parent) for r in rows if r.file})
    caption = weights + (f" · in {', '.join(folders)}" if folders else "")
    table = Table(title="casvit export", caption=caption)
    for column in ("format", "status", "file", "size", "compression", "time", "parity", "reason"):
        table.add_column(column, justify="right" if column in ("size", "time") else "left",
                         overflow="fold", no_wrap=column in ("format", "status", "size", "time"))
    for r in rows:
        size = f"{r.size_bytes / 1e6:.1f} MB" if r.size_bytes else ""
        style = "green" if r.status == "ok" else "red"
        table.add_row(r.format, f"[{style}]{r.status}[/]", Path(r.file).name if r.file else "", size,
                      r.compression, f"{r.seconds:.1f}s" if r.seconds else "", r.parity, escape(r.reason))
    return table


def _print_summary(rows: list[Row], weights: str) -> None:
    """The table, then each format's one-line notes (e.g. which mobile execution provider
    takes the whole ONNX graph)."""
    show(console(), _table(rows, weights), *(escape(f"{row.format}: {note}") for row in rows for note in row.notes))


def _run_all(loaded, formats, request: Request, out, check: bool, status: Status) -> list[Row]:
    """Each format on its own: a failing one is recorded and the others still run."""
    from casvit_deploy.errors import CasvitError

    rows = []
    for fmt in formats:
        try:
            rows.append(_export_one(loaded, fmt, request, out, check, status))
        except CasvitError as err:
            if len(formats) == 1:
                raise
            rows.append(Row(fmt.name, "failed", reason=str(err)))
    return rows


def _int8_options(precision, calibration, samples, method, keep_float, auto, min_cosine, quantize_residual):
    """Int8Options for --precision int8; UsageError when an int8 flag comes with another precision."""
    from casvit_deploy.artifacts.options import DEFAULT_MIN_COSINE, Int8Options
    from casvit_deploy.errors import UsageError

    given = [flag for flag, value in (("--calibration", calibration), ("--calibration-samples", samples),
                                      ("--calibration-method", method), ("--keep-float", keep_float),
                                      ("--auto-keep-float", auto), ("--quantize-residual", quantize_residual),
                                      ("--min-cosine", min_cosine != DEFAULT_MIN_COSINE)) if value]
    if precision not in (Precision.INT8, Precision.W8A8):
        if given:
            raise UsageError(f"{given[0]} applies to --precision int8 or w8a8 only")
        return None
    return Int8Options(calibration=calibration, calibration_samples=samples, calibration_method=method,
                       keep_float=tuple(keep_float), quantize_residual=quantize_residual, auto_keep_float=auto,
                       min_cosine=min_cosine)


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
    opset: Annotated[Optional[int], typer.Option("--opset", help="ONNX/ORT: default-domain opset, 17 to 20 (default 20; below 20 GELU stays the erf form; the IR version follows).", show_default=False)] = None,
    image_input: Annotated[bool, typer.Option("--image-input", help="CoreML: RGB image input, ImageNet normalization folded in.")] = False,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="CoreML: class labels file (one per line), or 'imagenet' for the ImageNet-1k names -> a classifier (softmax probabilities + top label).", metavar="FILE|imagenet", show_default=False)] = None,
    deployment_target: Annotated[str, typer.Option("--deployment-target", help="CoreML minimum deployment target.")] = "iOS16",
    fp16_output: Annotated[bool, typer.Option("--fp16-output", help="CoreML fp16: keep the logits float16 (default: cast to float32 inside the program).")] = False,
    author: Annotated[Optional[str], typer.Option("--author", help="CoreML metadata: author.", show_default=False)] = None,
    license: Annotated[Optional[str], typer.Option("--license", help="CoreML metadata: license.", show_default=False)] = None,
    model_version: Annotated[Optional[str], typer.Option("--model-version", help="CoreML metadata: version (default: casvit-deploy's).", show_default=False)] = None,
    description: Annotated[Optional[str], typer.Option("--description", help="CoreML metadata: short description.", show_default=False)] = None,
    allow_portable: Annotated[bool, typer.Option("--allow-portable", help="ExecuTorch: accept ops left on portable kernels.")] = False,
    delegate: Annotated[Delegate, typer.Option("--delegate", help="ExecuTorch delegate: xnnpack, coreml, or portable (no delegate: reference kernels, slow; a baseline).", case_sensitive=False)] = Delegate.XNNPACK,
    calibration: CalibrationOpt = None, calibration_samples: CalibrationSamplesOpt = None,
    calibration_method: CalibrationMethodOpt = None, keep_float: KeepFloatOpt = None,
    auto_keep_float: Annotated[bool, typer.Option("--auto-keep-float", help="int8: also keep float the fewest blocks "
                                                  "(greedy, by per-block error) that reach --min-cosine.")] = False,
    min_cosine: Annotated[float, typer.Option("--min-cosine", help="int8: target of --auto-keep-float, smallest "
                                              "per-sample cosine with fp32 on the calibration photographs.")] = 0.999,
    quantize_residual: Annotated[bool, typer.Option("--quantize-residual", help="int8: also quantize the residual "
                                                    "stream between blocks (faster, less accurate).")] = False,
    palettize: PalettizeOpt = None, fp16_safe: Fp16SafeOpt = False,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Run the parity check before publishing; an artifact that fails it is not published.")] = True,
    json: JsonOpt = None,
) -> None:
    """Export to ONNX, ORT format, CoreML and/or ExecuTorch: parity-checked artifacts with JSON manifests.

    A classifier gives one output, "logits"; a dense-prediction backbone four feature maps,
    "feat_s4", "feat_s8", "feat_s16", "feat_s32" (strides and channels in the manifest).
    """
    from casvit_deploy.artifacts.formats import parse_formats
    from casvit_deploy.artifacts.options import from_flags
    from casvit_deploy.export import check_dynamic_shape, check_settings
    from casvit_deploy.model import load_model

    formats = parse_formats(format)
    for fmt in formats:
        fmt.require("export")  # a missing backend is named, with its pip extra, before any work
    check_report_paths(json=json)
    size = check_settings(resolution, batch)
    for fmt in formats if dynamic_shape else ():
        check_dynamic_shape(fmt)
    flags = {"opset": opset, "image_input": image_input, "labels": labels, "deployment_target": deployment_target,
             "fp16_output": fp16_output, "author": author, "license": license, "version": model_version,
             "description": description, "allow_portable": allow_portable, "delegate": delegate,
             "palettize": palettize, "fp16_safe": fp16_safe}
    check_format_flags(formats, flags)
    int8 = _int8_options(precision, calibration, calibration_samples, calibration_method, split_values(keep_float),
                         auto_keep_float, min_cosine, quantize_residual)  # judged by the format's precision check
    options = {fmt.name: from_flags(fmt.options, flags | {"int8": int8}) for fmt in formats}  # bad values stop here
    with Status("load") as status:
        status.update("load model")
        loaded = load_model(checkpoint, variant, ema, backbone=backbone)
        print_notes(loaded.notes)
        request = Request(loaded.input_resolution(size), batch, dynamic_batch, dynamic_shape, precision,
                          Form.UPSTREAM if no_rewrite else Form.DEPLOY, force, options)
        rows = _run_all(loaded, formats, request, out, check, status)
    emit(json, lambda: json_text({"weights": loaded.weights, "results": [asdict(r) for r in rows]}))
    if not to_stdout(json):
        _print_summary(rows, loaded.weights)
    if any(r.status != "ok" for r in rows):
        raise typer.Exit(1)
