"""`casvit eval`: accuracy of artifacts and of their eager fp32 model on labelled images;
exit 0 done (every artifact within --max-top1-drop), 1 an artifact lost more, 2 bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from casvit_deploy.commands.common import (
    CheckpointOpt,
    JsonOpt,
    ThreadsOpt,
    check_report_paths,
    console,
    emit,
    guarded,
    report_option,
    to_stdout,
)
from casvit_deploy.commands.render import Status, show
from casvit_deploy.formats import suffixes

ArtifactsArg = Annotated[list[Path], typer.Argument(help=f"Classifier artifacts ({', '.join(suffixes())}).",
                                                    show_default=False)]
DataOpt = Annotated[Path, typer.Option(
    "--data", help="Labelled images: a folder with one sub-folder of images per class (named by class index, by a "
    "name in --labels, or by ImageNet synset id when all 1000 are there), or a list file of `path label` lines "
    "(paths relative to it). An unreadable image stops the run (exit 2), naming it.", show_default=False)]
LabelsOpt = Annotated[Optional[str], typer.Option(
    "--labels", help="Class names in index order (one per line), or 'imagenet' for the ImageNet-1k names: folder "
    "names and list labels are looked up in it.", metavar="FILE|imagenet", show_default=False)]
MaxDropOpt = Annotated[Optional[float], typer.Option(
    "--max-top1-drop", help="Gate: exit 1 when an artifact's top-1 is more than this many percentage points below "
    "its eager fp32 model's on the same images.", metavar="PP", show_default=False)]
PlotOpt = report_option("--plot", "Write a PNG of top-1 against latency (measured briefly in this run) and size "
                                  "(needs the [plot] extra).")
MarkdownOpt = report_option("--markdown", "Write the table as Markdown here ('-': print it).")


def _table(report) -> Table:
    from casvit_deploy.eval.writers import COLUMNS, caption, cells

    table = Table(title="casvit eval", caption="\n".join(escape(line) for line in caption(report)))
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in ("size", "top-1", "top-5", "agreement", "latency")
                         else "left", overflow="fold")
    for result in report.results:
        row = [escape(cell) for cell in cells(result, report)]
        table.add_row(*row, style="red" if result.passed is False else None)
    return table


@guarded
def eval(  # noqa: A001  the command's name
    artifacts: ArtifactsArg,
    data: DataOpt,
    checkpoint: CheckpointOpt = None,
    labels: LabelsOpt = None,
    max_top1_drop: MaxDropOpt = None,
    threads: ThreadsOpt = None,
    json: JsonOpt = None,
    markdown: MarkdownOpt = None,
    plot: PlotOpt = None,
) -> None:
    """Measure top-1/top-5 of artifacts and of their eager fp32 model on labelled images.

    Each artifact is fed by its manifest's preprocessing; the top-1 drop against eager fp32 is
    paired over the same images, with a 95% interval. Results are recorded in each artifact's
    manifest (shown by casvit info ARTIFACT)."""
    from casvit_deploy.errors import AccuracyFailure
    from casvit_deploy.eval import EvalRequest, evaluate
    from casvit_deploy.eval.plot import require_matplotlib, write_plot
    from casvit_deploy.eval.writers import to_json, to_markdown

    check_report_paths(json=json, markdown=markdown, plot=plot)
    if plot is not None:
        require_matplotlib()
    if labels is not None:
        from casvit_deploy.formats.coreml.labels import check_source

        check_source(labels)
    request = EvalRequest(tuple(artifacts), data, checkpoint, labels, max_top1_drop, threads, latency=plot is not None)
    with Status("eval") as status:
        report = evaluate(request, progress=status.update)
    if not (to_stdout(json) or to_stdout(markdown)):
        show(console(), _table(report))
    emit(json, lambda: to_json(report))
    emit(markdown, lambda: to_markdown(report))
    if plot is not None:
        write_plot(report, plot)
    if report.failed:
        where = "; ".join(f"{r.name}: {r.drop.drop_pp:.2f} pp" for r in report.failed)
        raise AccuracyFailure(f"top-1 dropped more than {max_top1_drop:g} pp for {len(report.failed)} of "
                              f"{sum(r.kind == 'artifact' for r in report.results)} artifacts ({where})")
