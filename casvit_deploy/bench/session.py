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

from casvit_deploy.bench.backends import Case, Prepared, known_backends
from casvit_deploy.bench.environment import capture_environment
from casvit_deploy.bench.gemm import gemm_gflops
from casvit_deploy.bench.memory import PeakMemory
from casvit_deploy.bench.process import process_settings
from casvit_deploy.bench.results import BenchReport, BenchResult, Skipped, fill_derived
from casvit_deploy.bench.stats import summarize
from casvit_deploy.bench.timing import Schedule, measure
from casvit_deploy.errors import first_line
from casvit_deploy.paths import CACHE
from casvit_deploy.settings import MAX_BATCH, Device, Form, Precision, Resolution, choice


@dataclass
class ModelSource:
    """A model to benchmark: a loaded model, or a user's artifact (loaded may then be None)."""

    label: str
    loaded: object | None
    resolution: Resolution
    artifact: Path | None = None
    artifact_backend: str | None = None
    form: Form = Form.DEPLOY  # an artifact's form, from its manifest
    batches: tuple[int, ...] | None = None  # an artifact's fixed batch size
    note: str = ""  # why there is no eager baseline for an artifact
    precision: Precision | None = None  # an artifact's precision, from its manifest


MAX_THREADS = 1024


@dataclass
class BenchConfig:
    """What to measure; checked when made (UsageError, exit 2, before any work)."""

    backends: tuple[str, ...]
    device: Device = Device.CPU
    batches: tuple[int, ...] = (1,)
    precisions: tuple[Precision, ...] = (Precision.FP32,)
    forms: tuple[Form, ...] = (Form.DEPLOY,)
    threads: int = 1
    schedule: Schedule = field(default_factory=Schedule)
    rounds: int = 1
    channels_last: bool = False
    compile_mode: str = "default"
    disable: tuple[str, ...] = ()
    cache_dir: Path = CACHE
    baseline: bool = True  # add eager fp32 for speed-ups when not asked for
    profile: bool = False  # also profile each artifact per op kind, where its backend can

    def __post_init__(self):
        from casvit_deploy.errors import UsageError

        self.device = choice(Device, self.device, "--device")
        self.precisions = tuple(dict.fromkeys(choice(Precision, p, "--precision") for p in self.precisions))
        self.batches = tuple(dict.fromkeys(self.batches))
        if self.device is Device.CUDA:
            _require_cuda()
        if not all(isinstance(b, int) and 1 <= b <= MAX_BATCH for b in self.batches):
            raise UsageError(f"--batch must be from 1 to {MAX_BATCH}")
        if not isinstance(self.threads, int) or not 1 <= self.threads <= MAX_THREADS:
            raise UsageError(f"--threads {self.threads}: must be from 1 to {MAX_THREADS}")
        if not 1 <= self.rounds <= 1000:
            raise UsageError("--rounds must be from 1 to 1000")
        if self.compile_mode not in COMPILE_MODES:
            raise UsageError(f"--compile-mode {self.compile_mode!r}: choose one of {', '.join(COMPILE_MODES)}")

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "schedule"}
        out.update(schedule=self.schedule.__dict__, cache_dir=str(self.cache_dir), device=self.device.value,
                   precisions=[p.value for p in self.precisions], forms=[f.value for f in self.forms])
        return out


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")


def _require_cuda() -> None:
    import torch

    from casvit_deploy.errors import UsageError

    if not torch.cuda.is_available():
        raise UsageError("--device cuda, but this torch sees no CUDA GPU (CPU-only build or no driver)")


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
        forms = (src.form,) if src.artifact else config.forms
        precisions = (src.precision,) if src.precision else config.precisions
        for form in forms:
            for batch in src.batches or config.batches:
                group = [_case(src, config, b, form, batch, p) for p in precisions for b in backends]
                if config.baseline and src.loaded is not None:
                    base = _case(src, config, "eager", form, batch, Precision.FP32, channels_last=False)
                    group = [base] + [c for c in group if c != base]
                cases += group
    return cases


def _case(src: ModelSource, config: BenchConfig, backend: str, form: Form, batch: int, precision: Precision,
          channels_last: bool | None = None) -> Case:
    artifact = src.artifact if backend == src.artifact_backend else None
    layout = config.channels_last if channels_last is None else channels_last
    return Case(src.label, src.loaded, form, backend, config.device, precision, batch, src.resolution,
                config.threads, layout, config.compile_mode, config.disable, config.cache_dir, artifact)


def select_backends(requested: Sequence[str], device: Device) -> tuple[tuple[str, ...], list[Skipped]]:
    """The backends to run and those skipped with their reason.

    "all" means every backend, skipping those unavailable here; a backend named
    explicitly that cannot run here is a UsageError (exit 2) naming the reason.
    """
    from casvit_deploy.errors import UsageError

    device = choice(Device, device, "--device")
    requested = [part.strip() for name in requested for part in str(name).split(",") if part.strip()]
    known = known_backends()
    unknown = [n for n in requested if n != "all" and n not in known]
    if unknown:
        raise UsageError(f"unknown backend {unknown[0]!r}: choose from {', '.join(known)} or all")
    explicit = [n for n in requested if n != "all"]
    for name in explicit:
        reason = known[name].unavailable(device)
        if reason:
            raise UsageError(f"backend {name} cannot run here: {reason}")
    if "all" not in requested:
        return tuple(dict.fromkeys(explicit)), []
    chosen, skipped = [], []
    for name, backend in known.items():
        reason = backend.unavailable(device)
        if reason:
            skipped.append(Skipped(name, device.value, reason))
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
    progress = progress or Progress()
    report = BenchReport(capture_environment(), config.to_dict(), {}, skipped=list(skipped))
    report.skipped += [Skipped("eager", config.device.value, s.note, s.label) for s in sources if s.note]
    cases = _supported(plan(sources, config), report)
    used = [known_backends()[name] for name in dict.fromkeys(c.backend for c in cases)]
    with process_settings(config.threads, used, compile=any(c.backend == "compile" for c in cases)):
        gemm_start = measure_gemm(config.device)
        progress.begin(len(cases) * config.rounds)
        measured = _run_rounds(cases, config, progress, report)
        gemm_end = measure_gemm(config.device)
        if config.profile:
            report.profiles = _profiles(cases, measured, config, progress)
    peak = max(gemm_start, gemm_end)
    device = config.device.value
    report.gemm = {device: {"fp32_gflops": peak, "fp32_gflops_start": gemm_start,
                            "fp32_gflops_end": gemm_end, "threads": config.threads}}
    report.results = [_result(cases[i], m) for i, m in sorted(measured.items())]
    fill_derived(report.results, {device: peak})
    return report


PROFILE_RUNS = 30


def _profiles(cases: list[Case], measured: dict, config: BenchConfig, progress: Progress) -> list[dict]:
    """Per op kind, where the time of every measured artifact goes, by its backend's own
    profiler (backends without one are left out); trace files live in a folder of the
    export cache that is removed afterwards."""
    import tempfile

    found = []
    for index, m in sorted(measured.items()):
        case, backend = cases[index], known_backends()[cases[index].backend]
        if not getattr(backend, "can_profile", False) or m.prep.artifact is None:
            continue
        progress.case(f"profile {case.label} {case.backend} {case.precision.value}")
        Path(config.cache_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=config.cache_dir, prefix=".profile-") as work:
            profile = backend.profile(m.prep.artifact, config.threads, PROFILE_RUNS, Path(work))
        found.append({"model": case.label, "backend": case.backend, "precision": case.precision.value,
                      "batch": case.batch, "artifact": str(m.prep.artifact)} | profile.to_dict())
    return found


def _supported(cases: list[Case], report: BenchReport) -> list[Case]:
    """The cases whose backend handles their precision; the others are listed as skipped."""
    kept = []
    for case in cases:
        reason = known_backends()[case.backend].unsupported(case.precision)
        if reason:
            report.skipped.append(Skipped(case.backend, case.device.value, f"{case.precision.value}: {reason}",
                                          case.label))
        else:
            kept.append(case)
    return kept


def measure_gemm(device: Device) -> float:
    """fp32 GEMM GFLOP/s on the benchmark device (1024³ on the CPU, 8192³ on CUDA)."""
    return gemm_gflops(device.value, size=1024 if device is Device.CPU else 8192)


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
            progress.case(f"{case.label} {case.form.value} {case.backend} {case.precision.value} b{case.batch}{suffix}")
            try:
                _measure_case(index, case, config, progress, measured)
            except Exception as err:  # one case's failure must not end the run
                report.failed.append(Skipped(case.backend, case.device.value, first_line(err, 300), case.label))
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
    memory = PeakMemory(cuda=case.device is Device.CUDA)
    memory.start()
    prep = known_backends()[case.backend].prepare(case, progress.note)
    first_ms = _first_inference_ms(prep, case.device)
    samples = measure(prep.run, _schedule_for(case, config.schedule, first_ms), prep.clock)
    measured[index] = _Measured(prep, first_ms, memory.peak_rss_mb(), memory.cuda_peak_mb(), list(samples),
                                [summarize(samples, case.batch).p50_ms])


def _schedule_for(case: Case, schedule: Schedule, first_ms: float) -> Schedule:
    """The schedule cut to the backend's time budget per case, for very slow backends."""
    budget = getattr(known_backends()[case.backend], "time_budget_s", None)
    return schedule if budget is None else schedule.fitted(first_ms / 1e3, budget)


def _first_inference_ms(prep: Prepared, device: str) -> float:
    sync = _sync(device)
    sync()
    start = time.perf_counter()
    prep.run()
    sync()
    return (time.perf_counter() - start) * 1e3


def _sync(device: Device):
    if device is Device.CUDA:
        import torch

        return torch.cuda.synchronize
    return lambda: None


def _gflop_per_image(loaded, resolution: Resolution) -> float | None:
    """2 x the conv and linear MACs of one image at `resolution` (non-square sizes too)."""
    if loaded is None:
        return None
    from casvit_deploy.analysis import macs_per_stage

    return 2 * sum(macs_per_stage(loaded.model, resolution).values()) / 1e9


def _result(case: Case, m: _Measured) -> BenchResult:
    loaded, prep = case.loaded, m.prep
    return BenchResult(
        model=case.label, variant=getattr(loaded, "variant", None),
        weights=getattr(loaded, "weights", "artifact"), form=case.form.value, passes=list(prep.passes),
        backend=case.backend, engine=prep.engine, device=case.device.value, precision=case.precision.value,
        batch=case.batch, resolution=case.resolution, channels_last=case.channels_last, threads=prep.threads,
        stats=summarize(m.samples, case.batch), round_p50_ms=m.round_p50_ms, load_s=prep.load_s,
        first_inference_ms=m.first_ms, peak_rss_mb=m.peak_rss_mb, cuda_peak_mb=m.cuda_peak_mb,
        artifact=str(prep.artifact) if prep.artifact else None, artifact_mb=prep.artifact_mb,
        export_s=prep.export_s, gflop_per_image=_gflop_per_image(loaded, case.resolution),
        agreement=prep.agreement, npu_only=prep.npu_only)
