"""Timing loops: warm-up, then a fixed number of runs or runs until a time budget is spent."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Schedule:
    """How many runs to time: `iters` exactly, or as many as fit in `min_time` seconds
    (at least `min_iters`). Exactly one of `iters` and `min_time` is set."""

    warmup: int = 10
    iters: int | None = 50
    min_time: float | None = None
    min_iters: int = 5

    @classmethod
    def from_options(cls, warmup: int = 10, iters: int | None = None, min_time: float | None = None) -> "Schedule":
        """The schedule for `--warmup/--iters/--min-time` (default 50 runs); UsageError if they conflict."""
        from casvit_deploy.errors import UsageError

        if iters is not None and min_time is not None:
            raise UsageError("give --iters or --min-time, not both")
        if not 0 <= warmup <= 100_000 or (iters is not None and not 1 <= iters <= 1_000_000):
            raise UsageError("--warmup must be from 0 to 100000 and --iters from 1 to 1000000")
        if min_time is not None and not 0 < min_time <= 86_400:
            raise UsageError("--min-time must be a number of seconds above 0 (at most a day)")
        return cls(warmup=warmup, iters=None if min_time else (iters or 50), min_time=min_time)

    def done(self, count: int, elapsed: float) -> bool:
        if self.iters is not None:
            return count >= self.iters
        return count >= self.min_iters and elapsed >= self.min_time

    def fitted(self, seconds_per_run: float, budget_s: float, min_runs: int = 3) -> Schedule:
        """This schedule cut to about `budget_s` of runs at `seconds_per_run` each: no warm-up
        (the caller's first, untimed inference is one) and at least `min_runs` timed runs.
        Unchanged when it already fits."""
        runs = self.iters if self.iters is not None else max(self.min_iters, self.min_time / seconds_per_run)
        if (self.warmup + runs) * seconds_per_run <= budget_s:
            return self
        return replace(self, warmup=0, iters=max(min_runs, int(budget_s / seconds_per_run)), min_time=None)


class WallClock:
    """Host timer for synchronous runtimes (a call returns when its outputs are ready)."""

    def time(self, fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def finish(self, pending: list) -> list[float]:
        return pending


class CudaEvents:
    """Device timer: CUDA events recorded around each call on the current stream.

    Events are read after one synchronize at the end, so timing does not serialise the
    host with the device between runs beyond what the workload itself does.
    """

    def __init__(self):
        import torch

        self._torch = torch

    def time(self, fn: Callable[[], object]):
        cuda = self._torch.cuda
        start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        return start, end

    def finish(self, pending: list) -> list[float]:
        self._torch.cuda.synchronize()
        return [start.elapsed_time(end) / 1e3 for start, end in pending]


def measure(fn: Callable[[], object], schedule: Schedule, clock=None,
            tick: Callable[[], None] | None = None) -> list[float]:
    """Seconds per call of `fn` after `schedule.warmup` untimed calls; `tick` after each call."""
    clock = clock or WallClock()
    for _ in range(schedule.warmup):
        fn()
    if isinstance(clock, CudaEvents):
        clock._torch.cuda.synchronize()
    pending: list = []
    start = time.perf_counter()
    while not schedule.done(len(pending), time.perf_counter() - start):
        pending.append(clock.time(fn))
        if tick:
            tick()
    return clock.finish(pending)
