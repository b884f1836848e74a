"""`casvit eval` reports as text: the cells every view shares, JSON and a Markdown table."""

from __future__ import annotations

import json

from casvit_deploy.eval.report import EvalReport, ModelResult

COLUMNS = ("model", "format", "precision", "size", "top-1", "top-5", "top-1 drop (95% CI)", "agreement",
           "worst classes", "latency", "gate")


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def drop_cell(result: ModelResult) -> str:
    """e.g. "0.28 pp [-0.80, 1.56]"."""
    d = result.drop
    return "-" if d is None else f"{d.drop_pp:.2f} pp [{d.low_pp:.2f}, {d.high_pp:.2f}]"


def worst_cell(result: ModelResult, report: EvalReport) -> str:
    """The classes that drop most, e.g. "8: 97.1% -> 91.4% (35)"; "-" when none drops."""
    return "; ".join(f"{report.class_name(w.label)}: {percent(w.reference)} -> {percent(w.candidate)} ({w.n})"
                     for w in result.worst) or "-"


def latency_cell(result: ModelResult) -> str:
    if not result.latency:
        return "-"
    batch = result.latency["batch"]
    return f"{result.latency['p50_ms']:.2f} ms" + (f" (batch {batch})" if batch != 1 else "")


def gate_cell(result: ModelResult, report: EvalReport) -> str:
    if result.passed is None:
        return "-"
    return f"{'pass' if result.passed else 'FAIL'} (max {report.max_top1_drop:g} pp)"


def cells(result: ModelResult, report: EvalReport) -> list[str]:
    """One row of COLUMNS."""
    size = "-" if result.size_bytes is None else f"{result.size_bytes / 1e6:.2f} MB"
    return [result.name, result.format, result.precision, size, percent(result.top1), percent(result.top5),
            drop_cell(result), percent(result.agreement), worst_cell(result, report), latency_cell(result),
            gate_cell(result, report)]


def caption(report: EvalReport) -> list[str]:
    """The lines under the table: the data, the interval, the latency method, notes."""
    fingerprint = report.dataset.fingerprint
    lines = [f"data: {report.dataset.describe()}; fingerprint sha256 {fingerprint.sha256[:16]}... of the sorted "
             "path/label list (not the images)",
             "top-1 drop: eager fp32 minus artifact, percentage points, paired over the same images, 95% interval "
             "(Newcombe); agreement: same top-1 class as eager fp32"]
    if report.latency_method:
        lines.append(f"latency (p50): {report.latency_method}")
    lines += [f"{r.name}: {note}" for r in report.results for note in r.notes] + report.notes
    return lines


def to_json(report: EvalReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


def to_markdown(report: EvalReport) -> str:
    def row(values) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    lines = [row(COLUMNS), row(["---"] * len(COLUMNS))]
    lines += [row(cells(r, report)) for r in report.results]
    return "\n".join(lines + [""] + caption(report)) + "\n"
