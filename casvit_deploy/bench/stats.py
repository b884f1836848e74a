"""Latency statistics over a list of timed runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Per-batch latency in milliseconds and the throughput it implies.

    Percentiles use linear interpolation between order statistics (numpy's default);
    `std` is the sample standard deviation (ddof=1, 0 for a single run); throughput is
    batch / median latency.
    """

    iters: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    throughput: float

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(seconds: Sequence[float], batch: int) -> LatencyStats:
    """Statistics of per-call wall times given in seconds, for `batch` images per call."""
    if len(seconds) == 0:
        raise ValueError("no timed runs to summarize")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    return LatencyStats(int(ms.size), float(p50), float(p90), float(p99), float(ms.mean()), std,
                        float(ms.min()), float(batch * 1e3 / p50))
