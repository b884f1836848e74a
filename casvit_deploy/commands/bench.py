"""`casvit bench`: latency and throughput of CAS-ViT across runtimes, with a comparison gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from casvit_deploy.commands.common import CheckpointOpt, EmaOpt, ResolutionOpt, console, guarded

ArtifactsArg = Annotated[Optional[list[Path]], typer.Argument(
    help="Exported artifacts (.onnx, .pte, .mlpackage) to time instead of a variant.", show_default=False)]
BackendOpt = Annotated[list[str], typer.Option(
    "--backend", "-b", help="eager, compile, cudagraph, onnxruntime, executorch, executorch-portable, coreml, "
    "or all (skips what cannot run here). Repeatable.")]
VariantsOpt = Annotated[Optional[list[str]], typer.Option(
    "--variant", "-v", help="xs, s, m or t (repeatable); default xs.", show_default=False)]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda.")]
BatchOpt = Annotated[list[int], typer.Option("--batch", help="Batch size (repeatable).")]
PrecisionOpt = Annotated[list[str], typer.Option("--precision", help="fp32 or fp16 (repeatable).")]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", help="CPU threads for torch, ONNX Runtime and XNNPACK (default: usable cores).", show_default=False)]
WarmupOpt = Annotated[int, typer.Option("--warmup", help="Untimed runs before timing.")]
ItersOpt = Annotated[Optional[int], typer.Option("--iters", help="Timed runs per case (default 50).",
                                                 show_default=False)]
MinTimeOpt = Annotated[Optional[float], typer.Option(
    "--min-time", help="Time each case for at least this many seconds instead of --iters.", show_default=False)]
RoundsOpt = Annotated[int, typer.Option("--rounds", help="Interleaved rounds over all cases (for noisy machines).")]
NoRewriteOpt = Annotated[bool, typer.Option("--no-rewrite", help="Time the upstream graph, not the deploy form.")]
BothFormsOpt = Annotated[bool, typer.Option("--both-forms", help="Time upstream and deploy forms in one run.")]
ChannelsLastOpt = Annotated[bool, typer.Option("--channels-last", help="PyTorch backends: channels-last layout.")]
CompileModeOpt = Annotated[str, typer.Option("--compile-mode", help="torch.compile mode: default, reduce-overhead, "
                                             "max-autotune-no-cudagraphs, max-autotune.")]
NoBaselineOpt = Annotated[bool, typer.Option(
    "--no-baseline", help="Do not add eager fp32 runs for the speed-up column (saves time on slow CPUs).")]
CacheOpt = Annotated[Path, typer.Option("--cache-dir", help="Where exports are cached between runs.")]
FileOpt = lambda flag, text: Annotated[Optional[Path], typer.Option(flag, help=text, show_default=False)]  # noqa: E731
ThresholdOpt = Annotated[float, typer.Option(
    "--threshold", help="With --compare: percent p50 increase that counts as a regression (exit 1).")]

PRECISIONS = ("fp32", "fp16")
DEVICES = ("cpu", "cuda")


def _schedule(warmup: int, iters: int | None, min_time: float | None):
    from casvit_deploy.bench import Schedule
    from casvit_deploy.errors import UsageError

    if iters is not None and min_time is not None:
        raise UsageError("give --iters or --min-time, not both")
    if warmup < 0 or (iters is not None and iters < 1) or (min_time is not None and min_time <= 0):
        raise UsageError("--warmup must be >= 0, --iters >= 1 and --min-time > 0")
    return Schedule(warmup=warmup, iters=None if min_time else (iters or 50), min_time=min_time)


def _check_choices(device: str, batches: list[int], precisions: list[str], rounds: int) -> None:
    import torch

    from casvit_deploy.errors import UsageError

    if device not in DEVICES:
        raise UsageError(f"unknown --device {device!r}: choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda, but this torch sees no CUDA GPU (CPU-only build or no driver)")
    if any(b < 1 for b in batches):
        raise UsageError("--batch must be >= 1")
    if bad := [p for p in precisions if p not in PRECISIONS]:
        raise UsageError(f"unknown --precision {bad[0]!r}: choose fp32 or fp16")
    if rounds < 1:
        raise UsageError("--rounds must be >= 1")


def _check_outputs(*paths: Path | None) -> None:
    from casvit_deploy.errors import UsageError

    for path in filter(None, paths):
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise UsageError(f"cannot write {path}: folder {parent} does not exist")
        if path.is_dir():
            raise UsageError(f"cannot write {path}: it is a folder")


def _default_threads() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class _RichProgress:
    """Session progress drawn as a rich progress bar on stderr."""

    def __init__(self, progress):
        self._progress, self._task, self._case = progress, None, ""

    def begin(self, total_runs: int) -> None:
        self._task = self._progress.add_task("starting", total=total_runs)

    def case(self, text: str) -> None:
        self._case = text
        self._progress.update(self._task, description=text)

    def note(self, text: str) -> None:
        self._progress.update(self._task, description=f"{self._case}: {text}")

    def tick(self) -> None:
        self._progress.advance(self._task)


def _run(sources, config, skipped):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from casvit_deploy import bench

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        return bench.run(sources, config, _RichProgress(progress), skipped)


def _write_outputs(report, json_file, csv_file, markdown_file, plot_file) -> None:
    from casvit_deploy.bench import writers

    for path, render in ((json_file, writers.to_json), (csv_file, writers.to_csv),
                         (markdown_file, writers.to_markdown)):
        if path:
            writers.write_atomic(path, render(report))
    if plot_file:
        from casvit_deploy.bench.plot import write_plot

        write_plot(report, plot_file)


@guarded
def bench(artifacts: ArtifactsArg = None, backend: BackendOpt = ["all"], variant: VariantsOpt = None,
          checkpoint: CheckpointOpt = None, ema: EmaOpt = False, device: DeviceOpt = "cpu",
          batch: BatchOpt = [1], resolution: ResolutionOpt = None, precision: PrecisionOpt = ["fp32"],
          threads: ThreadsOpt = None, warmup: WarmupOpt = 10, iters: ItersOpt = None,
          min_time: MinTimeOpt = None, rounds: RoundsOpt = 1, no_rewrite: NoRewriteOpt = False,
          both_forms: BothFormsOpt = False, channels_last: ChannelsLastOpt = False,
          compile_mode: CompileModeOpt = "default", no_baseline: NoBaselineOpt = False, cache_dir: CacheOpt = Path("models/cache"),
          json: FileOpt("--json", "Write the full report as JSON.") = None,
          csv: FileOpt("--csv", "Write one CSV row per result.") = None,
          markdown: FileOpt("--markdown", "Write a Markdown report.") = None,
          plot: FileOpt("--plot", "Write a PNG chart of throughput (needs matplotlib).") = None,
          compare: FileOpt("--compare", "A saved --json report: print the change, exit 1 on regression.") = None,
          threshold: ThresholdOpt = 10.0) -> None:
    """Time CAS-ViT on each backend: latency percentiles, throughput, cold start, memory, speed-up."""
    from casvit_deploy.bench import BenchConfig, select_backends
    from casvit_deploy.bench.compare import compare as compare_runs
    from casvit_deploy.bench.compare import load_baseline, regressions
    from casvit_deploy.bench.sources import artifact_source, model_sources
    from casvit_deploy.bench.tables import compare_table, results_table, skipped_table

    schedule = _schedule(warmup, iters, min_time)
    _check_choices(device, batch, precision, rounds)
    _check_outputs(json, csv, markdown, plot)
    baseline = load_baseline(compare) if compare else None
    if artifacts:
        sources = [artifact_source(a, resolution) for a in artifacts]
        chosen, skipped = select_backends(sorted({s.artifact_backend for s in sources}), device)
    else:
        chosen, skipped = select_backends(backend, device)
        sources = model_sources(variant or [], checkpoint, ema, resolution)
    forms = (False, True) if both_forms else ((False,) if no_rewrite else (True,))
    config = BenchConfig(chosen, device, tuple(dict.fromkeys(batch)), tuple(dict.fromkeys(precision)), forms,
                         threads or _default_threads(), schedule, rounds, channels_last, compile_mode,
                         cache_dir=cache_dir, baseline=not no_baseline)
    report = _run(sources, config, skipped)
    out = console()
    if not out.is_terminal:
        out.width = max(out.width, 160)  # files and pipes get the whole table
    out.print(results_table(report))
    if table := skipped_table(report):
        out.print(table)
    _write_outputs(report, json, csv, markdown, plot)
    failed = bool(report.failed)
    if baseline is not None:
        changes = compare_runs(report.results, baseline.results, threshold)
        out.print(compare_table(changes, threshold))
        if worse := regressions(changes):
            typer.echo(f"{len(worse)} result(s) regressed beyond +{threshold:g}% p50 vs {compare}", err=True)
            failed = True
    if failed:
        raise typer.Exit(1)
