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

A baseline is checked whole before the run (every field of every result typed and in range,
at least one result), and a run none of whose cases is in the baseline is refused after it
(exit 2, see check_matched): a gate that compared nothing must not pass.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from casvit_deploy.bench.results import DERIVED_FIELDS, KEY_FIELDS, SCHEMA, BenchReport, BenchResult, Skipped
from casvit_deploy.bench.stats import LatencyStats
from casvit_deploy.errors import UsageError
from casvit_deploy.settings import Resolution

DEFAULT_THRESHOLD_PCT = 10.0
MAX_LATENCY_MS = 1e9  # no timed call takes longer (11 days); larger p50 values are not latencies
MAX_COUNT = 2**31 - 1  # batch, threads, iterations: no count in a real run comes near it
MAX_MEASURE = 1e15  # sizes, rates, ratios, seconds: finite, and far above any real one


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
    """A report saved with `--json`, every field checked (see _check_document); UsageError
    naming the first that is missing or wrong."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"baseline {path} does not exist") from None
    except (OSError, ValueError, RecursionError) as err:
        raise UsageError(f"baseline {path} is not readable JSON: {str(err)[:120] or type(err).__name__}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UsageError(f"baseline {path} is not a casvit bench report (expected schema {SCHEMA})")
    try:
        _check_document(data, f"baseline {path}")
    except UsageError as err:
        raise UsageError(f"{err}; save a whole one with casvit bench --json") from None
    return BenchReport.from_dict(data)


def _fields(*records) -> tuple[dict[str, str], set[str]]:
    """(field -> declared type, the fields without a default) of dataclasses, as a saved
    report holds them (a result's `stats` flattened into its own fields)."""
    fields = [f for record in records for f in dataclasses.fields(record) if f.type != "LatencyStats"]
    missing = dataclasses.MISSING
    return ({f.name: f.type for f in fields},
            {f.name for f in fields if f.default is missing and f.default_factory is missing})


RESULT_FIELDS, RESULT_REQUIRED = _fields(BenchResult, LatencyStats)
RESULT_FIELDS |= DERIVED_FIELDS
SKIPPED_FIELDS, SKIPPED_REQUIRED = _fields(Skipped)


def _valid(kind: str, name: str, value) -> bool:
    """`value` fits the declared type `kind` of field `name`: counts are integers from 1,
    measurements finite numbers from 0 (latencies, `*_ms`, at most MAX_LATENCY_MS; p50 above 0)."""
    if kind.startswith("list["):
        return isinstance(value, list) and all(_valid(kind[5:-1], name, v) for v in value)
    if kind in ("str", "bool", "dict"):
        return isinstance(value, {"str": str, "bool": bool, "dict": dict}[kind])
    if kind == "Resolution":
        return _is_resolution(value)
    if isinstance(value, bool) or not isinstance(value, int if kind == "int" else (int, float)):
        return False
    if kind == "int":
        return 1 <= value <= MAX_COUNT
    highest = MAX_LATENCY_MS if "_ms" in name else MAX_MEASURE
    return (0 < value if name == "p50_ms" else 0 <= value) and value <= highest


def _is_resolution(value) -> bool:
    try:
        Resolution.from_record(value)
    except (UsageError, TypeError):
        return False
    return True


def _expected(kind: str, name: str) -> str:
    if kind.startswith("list["):
        return f"a list, each {_expected(kind[5:-1], name)}"
    if kind == "float" and "_ms" in name:
        return f"a latency in ms, a number in {'(' if name == 'p50_ms' else '['}0, {MAX_LATENCY_MS:g}]"
    return {"str": "a string", "bool": "true or false", "dict": "an object", "int": f"an integer from 1 to {MAX_COUNT}",
            "float": f"a number from 0 to {MAX_MEASURE:g}", "Resolution": '{"height": H, "width": W}, each a '
            "multiple of 32 from 32 to 2048"}[kind]


def _check_fields(row, fields: dict[str, str], required: set[str], where: str) -> None:
    """UsageError unless `row` is an object whose `fields` (name -> declared type) hold values of
    their types, the `required` ones present; other keys are left alone (later versions may add some)."""
    if not isinstance(row, dict):
        raise UsageError(f"{where} is {row!r:.40}; expected an object")
    for name, declared in fields.items():
        if name not in row:
            if name in required:
                raise UsageError(f"{where} has no {name}; it is not a whole bench result")
            continue
        value, kind = row[name], declared.removesuffix(" | None")
        if not (value is None and declared.endswith(" | None")) and not _valid(kind, name, value):
            raise UsageError(f"{where}.{name} is {value!r:.40}; expected {_expected(kind, name)}")


def _check_gemm(gemm, where: str) -> None:
    """The same-run GEMM record: per device an object of numbers above 0 (rates, threads)."""
    if not isinstance(gemm, dict):
        raise UsageError(f"{where}: gemm is {gemm!r:.40}; expected an object of devices")
    for device, record in gemm.items():
        if not isinstance(record, dict):
            raise UsageError(f"{where}: gemm.{device} is {record!r:.40}; expected an object")
        for name, value in record.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_MEASURE:
                raise UsageError(f"{where}: gemm.{device}.{name} is {value!r:.40}; expected a number above 0")


def _check_document(data: dict, where: str) -> None:
    """Every field a comparison reads, typed and in range: `results` (at least one), each with
    BenchResult's fields; `environment`, `config`, `gemm`, `skipped`, `failed`, `created`."""
    _check_fields(data, {"environment": "dict", "config": "dict", "created": "str"}, {"environment"}, where)
    results = data.get("results")
    if not isinstance(results, list) or not results:
        raise UsageError(f"{where}: results is {results!r:.40}; expected a list of at least one result")
    for index, row in enumerate(results):
        _check_fields(row, RESULT_FIELDS, RESULT_REQUIRED, f"{where}: results[{index}]")
    _check_gemm(data.get("gemm", {}), where)
    for name in ("skipped", "failed"):
        rows = data.get(name, [])
        if not isinstance(rows, list):
            raise UsageError(f"{where}: {name} is {rows!r:.40}; expected a list")
        for index, row in enumerate(rows):
            _check_fields(row, SKIPPED_FIELDS, SKIPPED_REQUIRED, f"{where}: {name}[{index}]")


def describe_key(key: tuple) -> str:
    """A result's key as people read it: "xs deploy eager cpu fp32 b1 224" (+ " CL")."""
    case = dict(zip(KEY_FIELDS, key))
    return (f"{case['model']} {case['form']} {case['backend']} {case['device']} {case['precision']} "
            f"b{case['batch']} {case['resolution']}" + (" CL" if case["channels_last"] else ""))


def check_matched(changes: list[Change], baseline: Path) -> None:
    """UsageError (exit 2) when no case of this run has a result in the baseline: nothing was
    compared, so the gate could not pass. The baseline does not fit the command line (another
    size, batch, backend, ...): what must change is the input, as with any bad input, and
    nothing is written; exit 1 stays the answer to a measured regression."""
    if any(c.status not in ("new", "missing") for c in changes):
        return
    ran = next((describe_key(c.key) for c in changes if c.status == "new"), "nothing")
    held = next((describe_key(c.key) for c in changes if c.status == "missing"), "nothing")
    raise UsageError(f"--compare {baseline}: no case of this run is in the baseline (ran {ran}; the baseline holds "
                     f"{held}): nothing was compared; run the baseline's cases or save a new one with --json")


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
