"""Running a benchmark: plan the cases, prepare each once, time them in rounds, report.

Rounds interleave the cases (case A, B, C, then A, B, C again, ...), so on a shared
machine a burst of load hits every case rather than one; each case's statistics pool
all its timed runs, and `round_p50_ms` keeps each round's median for spread checks.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from casvit_deploy.bench.backends import BACKENDS, Case, Prepared
from casvit_deploy.bench.environment import capture_environment
from casvit_deploy.bench.gemm import gemm_gflops
from casvit_deploy.bench.memory import PeakMemory
from casvit_deploy.bench.results import BenchReport, BenchResult, Skipped, fill_derived
from casvit_deploy.bench.stats import summarize
from casvit_deploy.bench.timing import Schedule, measure


@dataclass
class ModelSource:
    """A model to benchmark: a loaded model, or a user's artifact (loaded may then be None)."""

    label: str
    loaded: object | None
    resolution: int
    artifact: Path | None = None
    artifact_backend: str | None = None
    rewrite: bool = True  # an artifact's form, from its manifest
    batches: tuple[int, ...] | None = None  # an artifact's fixed batch size


@dataclass
class BenchConfig:
    backends: tuple[str, ...]
    device: str = "cpu"
    batches: tuple[int, ...] = (1,)
    precisions: tuple[str, ...] = ("fp32",)
    forms: tuple[bool, ...] = (True,)  # True: deploy form, False: upstream form
    threads: int = 1
    schedule: Schedule = field(default_factory=Schedule)
    rounds: int = 1
    channels_last: bool = False
    compile_mode: str = "default"
    disable: tuple[str, ...] = ()
    cache_dir: Path = Path("models/cache")
    baseline: bool = True  # add eager fp32 for speed-ups when not asked for

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "schedule"}
        out.update(schedule=self.schedule.__dict__, cache_dir=str(self.cache_dir))
        return out


class Progress:
    """What the session reports while it runs; the CLI draws it with rich."""

    def begin(self, total_runs: int) -> None: ...
    def case(self, text: str) -> None: ...
    def note(self, text: str) -> None: ...
    def tick(self) -> None: ...


def plan(sources: Sequence[ModelSource], config: BenchConfig) -> list[Case]:
    """Every case to measure, baselines first within each model/form/batch group."""
    cases = []
    for src in sources:
        backends = (src.artifact_backend,) if src.artifact else config.backends
        forms = (src.rewrite,) if src.artifact else config.forms
        for rewrite in forms:
            for batch in src.batches or config.batches:
                group = [_case(src, config, b, rewrite, batch, p) for p in config.precisions for b in backends]
                if config.baseline and src.loaded is not None:
                    base = _case(src, config, "eager", rewrite, batch, "fp32", channels_last=False)
                    group = [base] + [c for c in group if c != base]
                cases += group
    return cases


def _case(src: ModelSource, config: BenchConfig, backend: str, rewrite: bool, batch: int, precision: str,
          channels_last: bool | None = None) -> Case:
    artifact = src.artifact if backend == src.artifact_backend else None
    layout = config.channels_last if channels_last is None else channels_last
    return Case(src.label, src.loaded, rewrite, backend, config.device, precision, batch, src.resolution,
                config.threads, layout, config.compile_mode, config.disable, config.cache_dir, artifact)


def select_backends(requested: Sequence[str], device: str) -> tuple[tuple[str, ...], list[Skipped]]:
    """The backends to run and those skipped with their reason.

    "all" means every backend, skipping those unavailable here; a backend named
    explicitly that cannot run here is a UsageError (exit 2) naming the reason.
    """
    from casvit_deploy.errors import UsageError

    unknown = [n for n in requested if n != "all" and n not in BACKENDS]
    if unknown:
        raise UsageError(f"unknown backend {unknown[0]!r}: choose from {', '.join(BACKENDS)} or all")
    explicit = [n for n in requested if n != "all"]
    for name in explicit:
        reason = BACKENDS[name].unavailable(device)
        if reason:
            raise UsageError(f"backend {name} cannot run here: {reason}")
    if "all" not in requested:
        return tuple(dict.fromkeys(explicit)), []
    chosen, skipped = [], []
    for name, backend in BACKENDS.items():
        reason = backend.unavailable(device)
        if reason:
            skipped.append(Skipped(name, device, reason))
        else:
            chosen.append(name)
    return tuple(chosen), skipped


@dataclass
class _Measured:
    prep: Prepared
    first_ms: float
    peak_rss_mb: float
    cuda_peak_mb: float | None
    samples: list[float]
    round_p50_ms: list[float]


def run(sources: Sequence[ModelSource], config: BenchConfig, progress: Progress | None = None,
        skipped: Sequence[Skipped] = ()) -> BenchReport:
    """Measure every planned case; cases that fail are listed in `report.failed`."""
    import torch

    progress = progress or Progress()
    torch.set_num_threads(config.threads)
    report = BenchReport(capture_environment(), config.to_dict(), {}, skipped=list(skipped))
    cases = _supported(plan(sources, config), report)
    gemm_start = measure_gemm(config.device)
    progress.begin(len(cases) * config.rounds)
    measured = _run_rounds(cases, config, progress, report)
    gemm_end = measure_gemm(config.device)
    peak = max(gemm_start, gemm_end)
    report.gemm = {config.device: {"fp32_gflops": peak, "fp32_gflops_start": gemm_start,
                                   "fp32_gflops_end": gemm_end, "threads": config.threads}}
    report.results = [_result(cases[i], m) for i, m in sorted(measured.items())]
    fill_derived(report.results, {config.device: peak})
    return report


def _supported(cases: list[Case], report: BenchReport) -> list[Case]:
    """The cases whose backend handles their precision; the others are listed as skipped."""
    kept = []
    for case in cases:
        reason = BACKENDS[case.backend].unsupported(case.precision)
        if reason:
            report.skipped.append(Skipped(case.backend, case.device, f"{case.precision}: {reason}", case.label))
        else:
            kept.append(case)
    return kept


def measure_gemm(device: str) -> float:
    """fp32 GEMM GFLOP/s on the benchmark device (1024³ on the CPU, 8192³ on CUDA)."""
    return gemm_gflops(device, size=1024 if device == "cpu" else 8192)


def _run_rounds(cases: list[Case], config: BenchConfig, progress: Progress, report: BenchReport) -> dict:
    measured: dict[int, _Measured] = {}
    failed: set[int] = set()
    for round_index in range(config.rounds):
        last = round_index == config.rounds - 1
        for index, case in enumerate(cases):
            if index in failed:
                progress.tick()
                continue
            suffix = f" (round {round_index + 1}/{config.rounds})" if config.rounds > 1 else ""
            progress.case(f"{case.label} {case.form} {case.backend} {case.precision} b{case.batch}{suffix}")
            try:
                _measure_case(index, case, config, progress, measured)
            except Exception as err:  # one case's failure must not end the run
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
                report.failed.append(Skipped(case.backend, case.device, reason, case.label))
                failed.add(index)
                measured.pop(index, None)
            if last and index in measured:
                measured[index].prep.close()
                gc.collect()
            progress.tick()
    return measured


def _measure_case(index: int, case: Case, config: BenchConfig, progress: Progress, measured: dict) -> None:
    if index in measured:
        m = measured[index]
        schedule = _schedule_for(case, config.schedule, m.first_ms)
        new = measure(m.prep.run, replace(schedule, warmup=min(schedule.warmup, 3)), m.prep.clock)
        m.samples += new
        m.round_p50_ms.append(summarize(new, case.batch).p50_ms)
        return
    memory = PeakMemory(cuda=case.device.startswith("cuda"))
    memory.start()
    prep = BACKENDS[case.backend].prepare(case, progress.note)
    first_ms = _first_inference_ms(prep, case.device)
    samples = measure(prep.run, _schedule_for(case, config.schedule, first_ms), prep.clock)
    measured[index] = _Measured(prep, first_ms, memory.peak_rss_mb(), memory.cuda_peak_mb(), list(samples),
                                [summarize(samples, case.batch).p50_ms])


def _schedule_for(case: Case, schedule: Schedule, first_ms: float) -> Schedule:
    """The schedule cut to the backend's time budget per case, for very slow backends."""
    budget = getattr(BACKENDS[case.backend], "time_budget_s", None)
    return schedule if budget is None else schedule.fitted(first_ms / 1e3, budget)


def _first_inference_ms(prep: Prepared, device: str) -> float:
    sync = _sync(device)
    sync()
    start = time.perf_counter()
    prep.run()
    sync()
    return (time.perf_counter() - start) * 1e3


def _sync(device: str):
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def _gflop_per_image(loaded, resolution: int) -> float | None:
    if loaded is None:
        return None
    from casvit_deploy.analysis import macs_per_stage

    return 2 * sum(macs_per_stage(loaded.model, resolution).values()) / 1e9


def _result(case: Case, m: _Measured) -> BenchResult:
    loaded, prep = case.loaded, m.prep
    return BenchResult(
        model=case.label, variant=getattr(loaded, "variant", None),
        weights=getattr(loaded, "weights", "artifact"), form=case.form, passes=list(prep.passes),
        backend=case.backend, engine=prep.engine, device=case.device, precision=case.precision,
        batch=case.batch, resolution=case.resolution, channels_last=case.channels_last, threads=prep.threads,
        stats=summarize(m.samples, case.batch), round_p50_ms=m.round_p50_ms, load_s=prep.load_s,
        first_inference_ms=m.first_ms, peak_rss_mb=m.peak_rss_mb, cuda_peak_mb=m.cuda_peak_mb,
        artifact=str(prep.artifact) if prep.artifact else None, artifact_mb=prep.artifact_mb,
        export_s=prep.export_s, gflop_per_image=_gflop_per_image(loaded, case.resolution))
