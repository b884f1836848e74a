"""`casvit parity`: check exported artifacts against eager PyTorch; exit 0 pass, 1 fail, 2 bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from casvit_deploy.commands.common import (
    CheckpointOpt,
    JsonOpt,
    check_report_paths,
    console,
    emit,
    guarded,
    report_option,
    to_stdout,
)
from casvit_deploy.commands.render import Status, show
from casvit_deploy.formats import suffixes
from casvit_deploy.formats.coreml.options import CoreMLEngine
from casvit_deploy.settings import InputKind

ArtifactsArg = Annotated[list[Path], typer.Argument(help=f"Artifacts ({', '.join(suffixes())}) and manifests.",
                                                    show_default=False)]
FloatOpt = Optional[float]


def _fmt(value, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else format(value, spec)


def _metrics_table(report) -> Table:
    table = Table(title=f"{Path(report.artifact).name}: {'PASS' if report.passed else 'FAIL'}",
                  caption=f"engine: {report.engine}\nreference: {report.reference} · {report.weights}")
    for col in ("inputs", "output", "max abs", "max rel", "mean abs", "cosine", "SNR dB", "top-1", "top-5", "verdict"):
        table.add_column(col, justify="left" if col in ("inputs", "output", "verdict") else "right")
    for s in report.input_sets:
        for m in s.outputs:
            table.add_row(f"{s.name} ({len(s.sources)})", m.name, _fmt(m.max_abs), _fmt(m.max_rel), _fmt(m.mean_abs),
                          _fmt(m.cosine, ".7f"), _fmt(m.snr_db, ".1f"), _fmt(m.top1_agreement, ".3f"),
                          _fmt(m.top5_overlap, ".3f"), "fail" if s.failures else "pass",
                          style=None if not s.failures else "red")
    return table


def _block_cell(block, quantized: bool) -> str:
    """A block's error: its SQNR for int8 artifacts, its relative error otherwise."""
    if quantized and block.sqnr_db is not None:
        return f"{_fmt(block.sqnr_db, '.1f')} dB"
    return _fmt(block.rel_err, ".2e") if block.rel_err is not None else block.status


def _margin_lines(report) -> list[str]:
    """Each output's values next to the limits they were judged by (passing runs show their margin)."""
    from casvit_deploy.numerics import margins

    return [escape(f"  {s.name} {m.name}: {margins(m, report.thresholds)}")
            for s in report.input_sets for m in s.outputs]


def _localization_table(reports) -> Table | None:
    """One table keyed by block name, one column per localized artifact (relative error)."""
    located = [r for r in reports if r.localization]
    if not located:
        return None
    table = Table(title="Per-block error max|out-ref| / max|ref|, int8: SQNR dB (<< first divergence)")
    table.add_column("block")
    for r in located:
        loc = r.localization
        table.add_column(f"{Path(r.artifact).name}\n{loc.engine}\n{loc.method}", justify="right")
    rows = {}
    for col, r in enumerate(located):
        for b in r.localization.blocks:
            cell = _block_cell(b, r.precision == "int8")
            if b.block == r.localization.first_divergent:
                cell = f"[bold red]{cell} <<[/]"
            elif b.status == "diverged":
                cell = f"[red]{cell}[/]"
            rows.setdefault(b.block, [""] * len(located))[col] = cell
    for block, cells in rows.items():
        table.add_row(block, *cells)
    table.caption = "\n".join(f"{Path(r.artifact).name}: {r.localization.input_set} sample "
                               f"{r.localization.sample}" + (f"; {r.localization.note}" if r.localization.note else "")
                               for r in located)
    return table


@guarded
def parity(
    artifacts: ArtifactsArg,
    checkpoint: CheckpointOpt = None,
    inputs: Annotated[InputKind, typer.Option("--inputs", help="Input sets to compare on.",
                                              case_sensitive=False)] = InputKind.BOTH,
    images: Annotated[Optional[Path], typer.Option("--images", help="Folder of your own images (default: "
                                                   "photographs bundled with scikit-image).", show_default=False)] = None,
    samples: Annotated[Optional[int], typer.Option("--samples", help="Samples per input set (default: 4 random, "
                                                   "every image).", show_default=False)] = None,
    atol: Annotated[FloatOpt, typer.Option("--atol", help="Absolute tolerance (default by precision).")] = None,
    rtol: Annotated[FloatOpt, typer.Option("--rtol", help="Tolerance relative to max|reference|.")] = None,
    min_cosine: Annotated[FloatOpt, typer.Option("--min-cosine", help="Smallest per-sample cosine allowed.")] = None,
    min_top1: Annotated[FloatOpt, typer.Option("--min-top1", help="Smallest top-1 agreement allowed.")] = None,
    min_snr_db: Annotated[FloatOpt, typer.Option("--min-snr-db", help="Smallest output SNR in dB allowed "
                                                 "(default by precision: int8 only).")] = None,
    min_top5: Annotated[FloatOpt, typer.Option("--min-top5", help="Smallest mean top-5 overlap allowed "
                                               "(default by precision: int8 only).")] = None,
    block_rtol: Annotated[FloatOpt, typer.Option("--block-rtol", help="Per-block localization: relative error "
                                                 "max|out-ref|/max|ref| above which a block diverges.")] = None,
    per_block: Annotated[bool, typer.Option("--per-block", help="Always compare every block (also on pass).")] = False,
    engine: Annotated[CoreMLEngine, typer.Option("--engine", help="What executes CoreML packages.",
                                                 case_sensitive=False)] = CoreMLEngine.AUTO,
    allow_modified: Annotated[bool, typer.Option(
        "--allow-modified", help="Check an artifact that differs from its manifest (e.g. post-processed) as it is, "
        "recording its new sha256; without it such an artifact fails.")] = False,
    json: JsonOpt = None,
    junit: report_option("--junit", "Write JUnit XML here ('-': print it).") = None,
) -> None:
    """Check artifacts against eager PyTorch; localize the first divergent block on failure.

    fp32/fp16 artifacts are judged by tolerance, int8 ones by agreement (cosine, SNR, top-1,
    top-5) with the per-block table in SQNR."""
    from casvit_deploy.errors import ParityFailure
    from casvit_deploy.formats import format_for_path
    from casvit_deploy.numerics import ThresholdOverrides
    from casvit_deploy.parity import check_artifact
    from casvit_deploy.parity.inputs import check_samples
    from casvit_deploy.parity.writers import to_json, to_junit

    check_report_paths(json=json, junit=junit)
    check_samples(samples)
    overrides = ThresholdOverrides(atol=atol, rtol=rtol, min_cosine=min_cosine, min_top1=min_top1,
                                   min_snr_db=min_snr_db, min_top5=min_top5, block_rtol=block_rtol)
    for artifact in artifacts:
        format_for_path(artifact)
    reports = []
    with Status("parity") as status:
        for index, artifact in enumerate(artifacts, 1):
            where = f"parity {index} of {len(artifacts)} {artifact.name}"
            reports.append(check_artifact(artifact, checkpoint=checkpoint, inputs=inputs, images_dir=images,
                                          samples=samples, per_block=per_block, engine=engine, overrides=overrides,
                                          allow_modified=allow_modified,
                                          progress=lambda stage: status.update(f"{where}: {stage}")))
    if not (to_stdout(json) or to_stdout(junit)):
        _print_reports(reports)
    emit(json, lambda: to_json(reports))
    emit(junit, lambda: to_junit(reports))
    failed = [r for r in reports if not r.passed]
    if failed:
        where = "; ".join(f"{Path(r.artifact).name}: {_why(r)}" for r in failed)
        raise ParityFailure(f"parity failed for {len(failed)} of {len(reports)} artifacts ({where})")


def _why(report) -> str:
    """What failed, in a few words: the artifact differs from its manifest, or where it diverges."""
    if report.integrity is not None and report.integrity.failures:
        return f"differs from its manifest: {report.integrity.failures[0]}"
    return report.divergence()


def _print_reports(reports) -> None:
    out = console()
    for report in reports:
        show(out, _metrics_table(report), *_margin_lines(report),
             *(f"[red]  {escape(failure)}[/]" for failure in report.failures),
             *(f"[yellow]  note: {escape(note)}[/]" for note in report.notes))
        if report.localization and not report.passed:
            show(out, f"[red]  where: {escape(report.divergence())}[/]")
    show(out, _localization_table(reports))
