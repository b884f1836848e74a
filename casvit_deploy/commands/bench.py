"""`casvit bench`: latency and throughput of CAS-ViT across runtimes, with a comparison gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from casvit_deploy.bench.backends import known_backends
from casvit_deploy.commands.common import (
    BackboneOpt,
    CheckpointOpt,
    EmaOpt,
    JsonOpt,
    PrecisionsOpt,
    ResolutionOpt,
    ThreadsOpt,
    VariantsOpt,
    check_report_paths,
    console,
    emit,
    guarded,
    print_notes,
    report_option,
    split_values,
    to_stdout,
)
from casvit_deploy.commands.render import Status, show
from casvit_deploy.formats import suffixes
from casvit_deploy.settings import Device, Precision

ArtifactsArg = Annotated[Optional[list[Path]], typer.Argument(
    help=f"Exported artifacts ({', '.join(suffixes())}) to time instead of a variant.", show_default=False)]
BackendOpt = Annotated[list[str], typer.Option(
    "--backend", "-b", help=f"{', '.join(known_backends())}, or all (skips what cannot run here). Repeatable.")]
DeviceOpt = Annotated[Device, typer.Option("--device", help="Where PyTorch and ONNX Runtime run.", case_sensitive=False)]
BatchesOpt = Annotated[list[int], typer.Option("--batch", help="Batch size (repeatable).")]
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
ProfileOpt = Annotated[bool, typer.Option(
    "--profile", help="Also show where each artifact's time goes per op kind (ExecuTorch: its event tracer; "
    "ONNX Runtime: its profiler).")]
NoBaselineOpt = Annotated[bool, typer.Option(
    "--no-baseline", help="Do not add eager fp32 runs for the speed-up column (saves time on slow CPUs).")]
CacheOpt = Annotated[Optional[Path], typer.Option("--cache-dir", help="Where exports are cached between runs "
                                                  "(default models/cache).", show_default=False)]
ThresholdOpt = Annotated[float, typer.Option(
    "--threshold", help="With --compare: percent p50 increase that counts as a regression (exit 1) when it also "
    "exceeds the measured noise (IQR, spread of round medians); else it is reported inconclusive.")]


def _default_threads() -> int:
    from casvit_deploy.bench.process import usable_cores

    return usable_cores()


def _forms(no_rewrite: bool, both_forms: bool):
    from casvit_deploy.settings import Form

    return (Form.UPSTREAM, Form.DEPLOY) if both_forms else ((Form.UPSTREAM,) if no_rewrite else (Form.DEPLOY,))


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


class _LogProgress:
    """Session progress for logs: one line per case (k of n) and per preparation stage."""

    def __init__(self, status: Status):
        self._status, self._total, self._done = status, 0, 0

    def begin(self, total_runs: int) -> None:
        self._total = total_runs

    def case(self, text: str) -> None:
        self._status.update(f"case {self._done + 1} of {self._total}: {text}")

    def note(self, text: str) -> None:
        self._status.update(f"  {text}")

    def tick(self) -> None:
        self._done += 1


def _run(sources, config, skipped):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from casvit_deploy import bench

    stderr = Console(stderr=True)
    if not stderr.is_terminal:
        with Status() as status:
            return bench.run(sources, config, _LogProgress(status), skipped)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=True) as progress:
        return bench.run(sources, config, _RichProgress(progress), skipped)


def _write_outputs(report, json_file, csv_file, markdown_file, plot_file) -> None:
    from casvit_deploy.bench import writers

    for path, render in ((json_file, writers.to_json), (csv_file, writers.to_csv),
                         (markdown_file, writers.to_markdown)):
        emit(path, lambda: render(report))
    if plot_file:
        from casvit_deploy.bench.plot import write_plot

        write_plot(report, plot_file)


@guarded
def bench(artifacts: ArtifactsArg = None, backend: BackendOpt = ["all"], variant: VariantsOpt = None,
          checkpoint: CheckpointOpt = None, ema: EmaOpt = False, backbone: BackboneOpt = False,
          device: DeviceOpt = Device.CPU,
          batch: BatchesOpt = [1], resolution: ResolutionOpt = None, precision: PrecisionsOpt = [Precision.FP32],
          threads: ThreadsOpt = None, warmup: WarmupOpt = 10, iters: ItersOpt = None,
          min_time: MinTimeOpt = None, rounds: RoundsOpt = 1, no_rewrite: NoRewriteOpt = False,
          both_forms: BothFormsOpt = False, channels_last: ChannelsLastOpt = False,
          compile_mode: CompileModeOpt = "default", no_baseline: NoBaselineOpt = False, profile: ProfileOpt = False,
          cache_dir: CacheOpt = None,
          json: JsonOpt = None,
          csv: report_option("--csv", "Write one CSV row per result ('-': print it).") = None,
          markdown: report_option("--markdown", "Write a Markdown report ('-': print it).") = None,
          plot: report_option("--plot", "Write a PNG chart of throughput (needs matplotlib).") = None,
          compare: report_option("--compare", "A saved --json report: print the change, exit 1 on regression.") = None,
          threshold: ThresholdOpt = 10.0) -> None:
    """Time CAS-ViT on each backend: latency percentiles, throughput, cold start, memory, speed-up.

    Also the GFLOP per image at the given size (classifiers and dense-prediction backbones).
    """
    from dataclasses import replace

    from casvit_deploy.bench import BenchConfig, Schedule, select_backends
    from casvit_deploy.bench.compare import (
        check_matched,
        check_threshold,
        inconclusive,
        load_baseline,
        machine_change_pct,
        regressions,
    )
    from casvit_deploy.bench.compare import compare as compare_runs
    from casvit_deploy.bench.sources import artifact_source, check_loads, model_sources
    from casvit_deploy.bench.tables import compare_table
    from casvit_deploy.paths import CACHE

    schedule = Schedule.from_options(warmup, iters, min_time)
    check_report_paths(json=json, csv=csv, markdown=markdown, plot=plot)
    check_threshold(threshold)
    if plot:
        from casvit_deploy.bench.plot import require_matplotlib

        require_matplotlib()
    baseline = load_baseline(compare) if compare else None
    config = BenchConfig((), device, tuple(batch), tuple(precision), _forms(no_rewrite, both_forms),
                         _default_threads() if threads is None else threads, schedule, rounds, channels_last,
                         compile_mode, cache_dir=cache_dir or CACHE, baseline=not no_baseline, profile=profile)
    if artifacts:
        sources = [artifact_source(a, resolution) for a in artifacts]
        chosen, skipped = select_backends(sorted({s.artifact_backend for s in sources}), device)
        for source in sources:
            check_loads(source.artifact)
    else:
        chosen, skipped = select_backends(split_values(backend), device)
        sources = model_sources(split_values(variant), checkpoint, ema, resolution, backbone)
        print_notes([note for s in sources for note in s.loaded.notes])
    report = _run(sources, replace(config, backends=chosen), skipped)
    if baseline is not None and not report.failed:  # a failed run is exit 1 whatever it compared
        check_matched(compare_runs(report.results, baseline.results, threshold), compare)
    _write_outputs(report, json, csv, markdown, plot)
    machine_output = any(to_stdout(p) for p in (json, csv, markdown))
    if not machine_output:
        _print_report(report)
    failed = bool(report.failed)
    if baseline is not None:
        machine = machine_change_pct(report, baseline)
        changes = compare_runs(report.results, baseline.results, threshold, machine)
        show(Console(stderr=True) if machine_output else console(), compare_table(changes, threshold))
        for device, pct in machine.items():
            if pct > threshold:
                typer.echo(f"the machine's speed changed between the runs: same-run GEMM on {device} "
                           f"{baseline.gemm[device]['fp32_gflops']:.0f} -> {report.gemm[device]['fp32_gflops']:.0f} "
                           f"GFLOP/s ({pct:.0f}% in latency terms, counted as noise)", err=True)
        if unsure := inconclusive(changes):
            typer.echo(f"{len(unsure)} result(s) inconclusive: changed beyond {threshold:g}% but within the measured "
                       "noise (not a regression); rerun with more --rounds on a quieter machine", err=True)
        if worse := regressions(changes):
            typer.echo(f"{len(worse)} result(s) regressed beyond +{threshold:g}% p50 and the measured noise vs "
                       f"{compare}", err=True)
            failed = True
    if failed:
        raise typer.Exit(1)


def _print_report(report) -> None:
    from casvit_deploy.bench.tables import profile_tables, results_table, skipped_table

    show(console(), results_table(report), skipped_table(report), *profile_tables(report))
