"""Comparing a run with a saved baseline (`--compare BASELINE.json`).

A result regresses when its median latency (p50) grew by more than `threshold` percent
over the baseline's for the same model, form, backend, device, precision, batch,
resolution and layout, AND by more than the measured noise: the larger IQR or spread of
per-round medians (percent of the median) of the two runs, and the change in the machine's
speed between them (the GEMM rate each run measures on the device, as a latency change). A
change beyond the threshold
but within the noise is "inconclusive: noisy", not a regression (exit 0): rerun with more
--rounds on a quieter machine. The default threshold, 10 %, sits above the run-to-run
spread of medians seen on a quiet machine (a few percent) and below the changes worth
catching.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from casvit_deploy.bench.results import KEY_FIELDS, SCHEMA, BenchReport, BenchResult
from casvit_deploy.errors import UsageError
from casvit_deploy.settings import Resolution

DEFAULT_THRESHOLD_PCT = 10.0
MAX_LATENCY_MS = 1e9  # no timed call takes longer (11 days); larger p50 values are not latencies


INCONCLUSIVE = "inconclusive: noisy"


@dataclass(frozen=True)
class Change:
    key: tuple
    baseline_ms: float | None
    current_ms: float | None
    status: str  # "regressed", "improved", "same", INCONCLUSIVE, "new", "missing"
    noise_pct: float | None = None  # the larger measured noise of the two runs

    @property
    def change_pct(self) -> float | None:
        if self.baseline_ms is None or self.current_ms is None:
            return None
        return 100.0 * (self.current_ms - self.baseline_ms) / self.baseline_ms


def load_baseline(path: Path) -> BenchReport:
    """A report saved with `--json`; UsageError if it is missing or not a bench report."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"baseline {path} does not exist") from None
    except (OSError, ValueError, RecursionError) as err:
        raise UsageError(f"baseline {path} is not readable JSON: {str(err)[:120] or type(err).__name__}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UsageError(f"baseline {path} is not a casvit bench report (expected schema {SCHEMA})")
    try:
        report = BenchReport.from_dict(data)
    except (KeyError, TypeError, AttributeError) as err:
        raise UsageError(f"baseline {path} is missing result fields ({err})") from None
    for index, result in enumerate(report.results):
        _check_result(result, f"baseline {path}: results[{index}]")
    return report


def _check_result(result: BenchResult, where: str) -> None:
    """UsageError unless `result` can be compared: scalar key fields, a p50 above zero."""
    for name in KEY_FIELDS:
        value = getattr(result, name)
        if not (value is None or isinstance(value, (str, int, float, Resolution))):
            raise UsageError(f"{where}.{name} is a {type(value).__name__}, not a value")
    p50 = result.stats.p50_ms
    if isinstance(p50, bool) or not isinstance(p50, (int, float)) or not 0 < p50 <= MAX_LATENCY_MS:
        raise UsageError(f"{where}.p50_ms is {p50!r:.40}; a latency must be a number above 0 (ms)")
    if not isinstance(result.round_p50_ms, list):
        raise UsageError(f"{where}.round_p50_ms is {result.round_p50_ms!r:.40}; it must be a list of latencies (ms)")
    spread = {"p25_ms": result.stats.p25_ms, "p75_ms": result.stats.p75_ms}  # what the noise is computed from
    spread |= {f"round_p50_ms[{i}]": v for i, v in enumerate(result.round_p50_ms)}
    for name, value in spread.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value <= MAX_LATENCY_MS):
            raise UsageError(f"{where}.{name} is {value!r:.40}; a latency must be a number from 0 (ms)")


def check_threshold(threshold_pct: float) -> float:
    """`threshold_pct` if it is a finite percentage >= 0; UsageError otherwise."""
    if not (isinstance(threshold_pct, (int, float)) and math.isfinite(threshold_pct) and threshold_pct >= 0):
        raise UsageError(f"--threshold {threshold_pct}: must be a finite percentage >= 0")
    return threshold_pct


def classify(baseline_ms: float, current_ms: float, threshold_pct: float, noise_pct: float = 0.0) -> str:
    """"regressed"/"improved" beyond both the threshold and the noise, "same" within the
    threshold, INCONCLUSIVE beyond the threshold but within the noise."""
    change = 100.0 * (current_ms - baseline_ms) / baseline_ms
    if abs(change) <= threshold_pct:
        return "same"
    if abs(change) <= noise_pct:
        return INCONCLUSIVE
    return "regressed" if change > 0 else "improved"


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def machine_change_pct(current: BenchReport, baseline: BenchReport) -> dict[str, float]:
    """Per device in both runs: how much the same-run fp32 GEMM rate changed, as the latency
    change it alone would cause, 100 * |GEMM before / GEMM now - 1|."""
    out = {}
    for device, now in current.gemm.items():
        before = (baseline.gemm.get(device) or {}).get("fp32_gflops") if isinstance(baseline.gemm, dict) else None
        if _positive(before) and _positive(now.get("fp32_gflops")):
            out[device] = abs(100.0 * (before / now["fp32_gflops"] - 1))
    return out


def compare(current: list[BenchResult], baseline: list[BenchResult], threshold_pct: float,
            machine_pct: dict[str, float] | None = None) -> list[Change]:
    """One Change per key in either run, current results first in their order; `machine_pct`
    (per device, see machine_change_pct) counts as noise."""
    check_threshold(threshold_pct)
    base = {r.key(): r for r in baseline}
    changes = []
    for r in current:
        before = base.pop(r.key(), None)
        if before is None:
            changes.append(Change(r.key(), None, r.stats.p50_ms, "new"))
            continue
        noise_pct = max(r.noise.pct, before.noise.pct, (machine_pct or {}).get(r.device, 0.0))
        status = classify(before.stats.p50_ms, r.stats.p50_ms, threshold_pct, noise_pct)
        changes.append(Change(r.key(), before.stats.p50_ms, r.stats.p50_ms, status, noise_pct))
    changes += [Change(key, b.stats.p50_ms, None, "missing") for key, b in base.items()]
    return changes


def regressions(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.status == "regressed"]


def inconclusive(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.status == INCONCLUSIVE]
