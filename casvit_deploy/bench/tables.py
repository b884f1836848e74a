"""Terminal rendering of a report and of a comparison with a baseline (rich)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from casvit_deploy.bench.compare import INCONCLUSIVE, Change
from casvit_deploy.bench.environment import describe_machine
from casvit_deploy.bench.results import KEY_FIELDS, BenchReport, BenchResult
from casvit_deploy.bench.writers import NPU_ONLY, RESULT_HEADERS, noisy_lines, npu_lines, result_cells

_TEXT_COLUMNS = {"model", "form", "backend", "device", "precision"}
_TERMINAL_HIDDEN = {"device", "std ms", "p90 ms", "min ms", "max ms"}  # in the caption / the files


def results_table(report: BenchReport) -> Table:
    """One row per result; columns that are empty in every row are left out. The fastest
    result per image is highlighted and named under the table."""
    fastest = min(report.results, key=lambda r: r.stats.p50_ms / r.batch, default=None)
    gemm = "; ".join(f"GEMM fp32 {d}: {g['fp32_gflops']:.0f} GFLOP/s" for d, g in report.gemm.items())
    caption = [describe_machine(report.environment), gemm] + ([fastest_line(fastest)] if fastest else [])
    caption += [f"[yellow]noisy: {escape(line)}[/]" for line in noisy_lines(report.results)]
    caption += [f"{NPU_ONLY}: {escape(line)}" for line in npu_lines(report.results)]
    table = Table(title="casvit bench", caption="\n".join(caption))
    rows = [result_cells(r) for r in report.results]
    keep = [i for i, h in enumerate(RESULT_HEADERS)
            if h not in _TERMINAL_HIDDEN and any(row[i] != "–" for row in rows)]
    for i in keep:
        header = RESULT_HEADERS[i]
        text = header in _TEXT_COLUMNS
        table.add_column(header, justify="left" if text else "right",
                         min_width=max(len(row[i]) for row in rows) if text else None)
    for r, row in zip(report.results, rows):
        table.add_row(*(row[i] for i in keep), style="bold green" if r is fastest else None)
    return table


def fastest_line(r: BenchResult) -> str:
    """The answer to "what should I ship here": the fastest result per image, in words."""
    speedup = f", {r.speedup_vs_eager:.2f}x eager fp32" if r.speedup_vs_eager else ""
    return (f"Fastest here: {r.backend} ({r.form} form, {r.precision}, batch {r.batch}, {r.device}) "
            f"{r.stats.p50_ms:.2f} ms p50, {r.stats.throughput:.1f} img/s{speedup}")


def skipped_table(report: BenchReport) -> Table | None:
    rows = [("skipped", s) for s in report.skipped] + [("failed", s) for s in report.failed]
    if not rows:
        return None
    table = Table(title="Not measured")
    for name in ("backend", "model", "device", "status", "reason"):
        table.add_column(name)
    for status, s in rows:
        table.add_row(s.backend, s.model or "all", s.device, status, escape(s.reason),
                      style="red" if status == "failed" else "dim")
    return table


def compare_table(changes: list[Change], threshold_pct: float) -> Table:
    table = Table(title=f"Change vs baseline (p50; regression beyond +{threshold_pct:g}% and the measured noise)")
    for name in ("model", "form", "backend", "device", "precision", "batch"):
        table.add_column(name)
    for name in ("baseline ms", "now ms", "change", "noise", "status"):
        table.add_column(name, justify="right")
    styles = {"regressed": "bold red", "improved": "green", "missing": "dim", "new": "cyan", INCONCLUSIVE: "yellow"}
    for c in changes:
        key = dict(zip(KEY_FIELDS, c.key))
        pct = c.change_pct
        table.add_row(key["model"], key["form"], key["backend"], key["device"],
                      key["precision"] + (" CL" if key["channels_last"] else ""), str(key["batch"]),
                      "–" if c.baseline_ms is None else f"{c.baseline_ms:.2f}",
                      "–" if c.current_ms is None else f"{c.current_ms:.2f}",
                      "–" if pct is None else f"{pct:+.1f}%", "–" if c.noise_pct is None else f"±{c.noise_pct:.1f}%",
                      c.status, style=styles.get(c.status))
    return table


def profile_tables(report: BenchReport) -> list[Table]:
    """One table per profiled artifact: op kind, count, ms per run, share of the run."""
    tables = []
    for prof in report.profiles:
        table = Table(title=f"profile: {prof['model']} {prof['backend']} {prof['precision']} b{prof['batch']}",
                      caption=f"{prof['engine']}; {prof['total_ms']:.2f} ms per run; {prof['note']}")
        for column in ("op kind", "count", "ms", "share"):
            table.add_column(column, justify="left" if column == "op kind" else "right")
        for op in prof["ops"]:
            table.add_row(op["kind"], str(op["count"] or ""), f"{op['ms']:.3f}", f"{100 * op['share']:.1f}%")
        tables.append(table)
    return tables
