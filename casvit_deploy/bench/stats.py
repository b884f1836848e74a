"""Latency statistics over a list of timed runs, and how noisy a measurement was."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

# A case is noisy when its runs' IQR exceeds this percentage of their median, or its
# per-round medians differ by more (torch.utils.benchmark and pyperf warn alike).
NOISE_PCT = 10.0


@dataclass(frozen=True)
class LatencyStats:
    """Per-batch latency in milliseconds and the throughput it implies.

    Percentiles use linear interpolation between order statistics (numpy's default);
    `std` is the sample standard deviation (ddof=1, 0 for a single run); throughput is
    batch / median latency. p10/p25/p75/max are None in reports saved before they existed.
    """

    iters: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    throughput: float
    p10_ms: float | None = None
    p25_ms: float | None = None
    p75_ms: float | None = None
    max_ms: float | None = None

    @property
    def iqr_ms(self) -> float | None:
        return None if self.p25_ms is None or self.p75_ms is None else self.p75_ms - self.p25_ms

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(seconds: Sequence[float], batch: int) -> LatencyStats:
    """Statistics of per-call wall times given in seconds, for `batch` images per call."""
    if len(seconds) == 0:
        raise ValueError("no timed runs to summarize")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    p10, p25, p50, p75, p90, p99 = (float(v) for v in np.percentile(ms, [10, 25, 50, 75, 90, 99]))
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    return LatencyStats(int(ms.size), p50, p90, p99, float(ms.mean()), std, float(ms.min()),
                        float(batch * 1e3 / p50), p10, p25, p75, float(ms.max()))


@dataclass(frozen=True)
class Noise:
    """How much a measured median can be trusted: the runs' IQR and the spread of the
    per-round medians, both in percent of the median."""

    iqr_pct: float | None
    round_spread_pct: float | None

    @property
    def pct(self) -> float:
        """The larger of the two (0 when neither was measured)."""
        return max(v for v in (self.iqr_pct, self.round_spread_pct, 0.0) if v is not None)

    def reasons(self, limit_pct: float = NOISE_PCT) -> list[str]:
        """Why the measurement is noisy (empty when it is not)."""
        out = []
        if self.iqr_pct is not None and self.iqr_pct > limit_pct:
            out.append(f"IQR {self.iqr_pct:.0f}% of the median (limit {limit_pct:g}%)")
        if self.round_spread_pct is not None and self.round_spread_pct > limit_pct:
            out.append(f"round medians differ by {self.round_spread_pct:.0f}% (limit {limit_pct:g}%)")
        return out


def noise(stats: LatencyStats, round_p50_ms: Sequence[float]) -> Noise:
    """The noise of one result: IQR / median, and (max - min) of round medians / median."""
    iqr = stats.iqr_ms
    spread = (max(round_p50_ms) - min(round_p50_ms)) if len(round_p50_ms) > 1 else None
    return Noise(None if iqr is None else 100 * iqr / stats.p50_ms,
                 None if spread is None else 100 * spread / stats.p50_ms)
