"""A brief latency measurement of every model of an eval run, for the accuracy/latency view:
measured in the same run (not read from a bench report), interleaved over rounds as `casvit
bench` does (each round times every model in turn), on the run's thread count, one seeded
input of the artifact's batch and size. Brief by design (ROUNDS x RUNS calls per model):
`casvit bench` is the measurement to quote."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from casvit_deploy.bench.stats import summarize
from casvit_deploy.bench.timing import Schedule, measure
from casvit_deploy.data.images import seeded_noise
from casvit_deploy.eval.report import EvalReport
from casvit_deploy.eval.subjects import Subjects

ROUNDS, RUNS, WARMUP = 3, 10, 2


def _calls(subjects: Subjects) -> dict[str, tuple[Callable[[], object], int]]:
    """Model name -> (one call on a seeded input, its batch)."""
    calls = {}
    for group in subjects.groups.values():
        for reference in group.references:
            x = seeded_noise(group.preprocessing.crop, 1)
            calls[reference.name] = ((lambda r=reference, x=x: r.runner.run(x)), 1)
        for subject in group.subjects:
            batch = subject.manifest.fixed_batch or 1
            x = np.ascontiguousarray(seeded_noise(subject.manifest.resolution, batch))
            calls[subject.name] = ((lambda s=subject, x=x: s.runner.run(x)), batch)
    return calls


def measure_latency(subjects: Subjects, report: EvalReport, progress: Callable[[str], None]) -> str:
    """Fill each result's `latency` (p50, p25/p75 in ms, batch, runs); returns how it was measured."""
    calls = _calls(subjects)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(ROUNDS):
        progress(f"latency: round {round_ + 1} of {ROUNDS}")
        for name, (call, _) in calls.items():
            times[name] += measure(call, Schedule(warmup=WARMUP if round_ == 0 else 1, iters=RUNS))
    for result in report.results:
        call, batch = calls[result.name]
        stats = summarize(times[result.name], batch)
        result.latency = {"p50_ms": stats.p50_ms, "p25_ms": stats.p25_ms, "p75_ms": stats.p75_ms, "batch": batch,
                          "runs": stats.iters}
    return (f"measured in this run: {ROUNDS} interleaved rounds of {RUNS} calls per model after warm-up, "
            f"{report.threads} threads, one seeded input of each model's batch and size; a brief figure "
            "(casvit bench measures properly), taken on whatever else the machine was running")
