"""Report files: JSON (complete), CSV (one flat row per result) and Markdown (for humans).

The command writes them with the one atomic writer (casvit_deploy/atomic.py).
"""

from __future__ import annotations

import csv
import io
import json

from casvit_deploy.bench.environment import describe_machine
from casvit_deploy.bench.results import BenchReport, BenchResult

CSV_FIELDS = ("model", "form", "backend", "device", "precision", "batch", "resolution", "channels_last",
              "threads", "iters", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "p10_ms",
              "p25_ms", "p75_ms", "iqr_ms", "iqr_pct", "round_spread_pct", "noisy", "throughput",
              "speedup_vs_eager", "speedup_vs_fp32", "npu_only", "size_vs_fp32", "cosine", "top1", "gflop_per_image",
              "achieved_gflops", "gemm_fraction", "load_s", "first_inference_ms", "peak_rss_mb", "cuda_peak_mb",
              "artifact_mb", "export_s", "engine", "weights", "artifact")


def to_json(report: BenchReport) -> str:
    return json.dumps(report.to_dict(), indent=2, default=str) + "\n"


def to_csv(report: BenchReport) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for result in report.results:
        agreement = result.agreement or {}
        row = result.to_dict() | {"resolution": str(result.resolution), "cosine": agreement.get("cosine"),
                                  "top1": agreement.get("top1")}
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    return buf.getvalue()


def _csv_value(value):
    return f"{value:.6g}" if isinstance(value, float) else value


def _fmt(value, spec: str, suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


NPU_ONLY = "NPU EP"  # the "vs fp32" cell of an int8 artifact exported for NPU execution providers


def _vs_fp32(r: BenchResult) -> str:
    """The speed-up over the same backend's fp32; for an artifact exported for NPU execution
    providers (slower than fp32 on this CPU EP) not a result: NPU_ONLY, and `npu_lines` says why."""
    if r.npu_only and r.speedup_vs_fp32 is not None and r.speedup_vs_fp32 < 1:
        return NPU_ONLY
    return _fmt(r.speedup_vs_fp32, ".2f", "x")


def npu_lines(results: list[BenchResult]) -> list[str]:
    """One line per int8 result shown as NPU_ONLY: its measured ratio, and what it is for."""
    return [f"{r.model} {r.form} {r.backend} {r.precision} b{r.batch}: {r.speedup_vs_fp32:.2f}x fp32 on this CPU; "
            "exported for NPU execution providers (NNAPI, QNN, CoreML EP), not as a CPU speed-up"
            for r in results if _vs_fp32(r) == NPU_ONLY]


def noisy_lines(results: list[BenchResult]) -> list[str]:
    """One line per noisy result: which case, and why its figures are not to be trusted."""
    return [f"{r.model} {r.form} {r.backend} {r.precision} b{r.batch}: {'; '.join(r.noise.reasons())}"
            for r in results if r.noise.reasons()]


def result_cells(r: BenchResult) -> list[str]:
    """The cells of one result row, shared by the Markdown and terminal tables."""
    s = r.stats
    return [r.model, r.form, r.backend, r.device, r.precision + (" CL" if r.channels_last else ""),
            str(r.resolution), str(r.batch),
            f"{s.p50_ms:.2f}", f"{s.p90_ms:.2f}", f"{s.p99_ms:.2f}", f"{s.std_ms:.2f}", f"{s.min_ms:.2f}",
            _fmt(s.max_ms, ".2f"), _fmt(s.iqr_ms, ".2f"), _fmt(r.noise.round_spread_pct, ".1f", "%"),
            "noisy" if r.noise.reasons() else "–", f"{s.throughput:.1f}",
            _fmt(r.speedup_vs_eager, ".2f", "x"), _vs_fp32(r),
            _fmt(r.size_vs_fp32 and 100 * r.size_vs_fp32, ".0f", "%"),
            _fmt((r.agreement or {}).get("cosine"), ".5f"), _fmt((r.agreement or {}).get("top1"), ".3f"),
            _fmt(r.gflop_per_image, ".3g"), _fmt(r.achieved_gflops, ".0f"),
            _fmt(r.gemm_fraction and 100 * r.gemm_fraction, ".0f", "%"),
            f"{r.load_s * 1e3:.0f}", f"{r.first_inference_ms:.0f}", f"{r.peak_rss_mb:.0f}",
            _fmt(r.cuda_peak_mb, ".0f"), _fmt(r.artifact_mb, ".1f")]


RESULT_HEADERS = ["model", "form", "backend", "device", "precision", "res", "batch", "p50 ms", "p90 ms", "p99 ms",
                  "std ms", "min ms", "max ms", "IQR ms", "rounds ±", "noise", "img/s", "vs eager", "vs fp32",
                  "size vs fp32", "cosine", "top-1", "GFLOP/img", "GFLOP/s", "% GEMM", "load ms", "1st ms", "RSS MB",
                  "CUDA MB", "artifact MB"]


def to_markdown(report: BenchReport, title: str = "casvit bench") -> str:
    env = report.environment
    lines = [f"# {title}", "", f"Machine: {describe_machine(env)}.", ""]
    lines += [f"GEMM fp32 ({device}, same run): {g['fp32_gflops']:.0f} GFLOP/s "
              f"(start {g['fp32_gflops_start']:.0f}, end {g['fp32_gflops_end']:.0f}; {g['threads']} threads)"
              for device, g in report.gemm.items()]
    weights = sorted({r.weights for r in report.results})
    lines += ["", f"Weights: {'; '.join(weights) or '–'}. Latency per batch; img/s = batch / p50; "
              "vs eager = eager fp32 p50 (same model, form, device, batch) / p50; vs fp32 and size vs fp32: against the "
              "same backend's fp32 artifact; cosine, top-1: an int8 artifact's agreement with fp32 eager on "
              "photographs, from its manifest; "
              "GFLOP/img = 2 x MACs of one image at its size; GFLOP/s = GFLOP/img x batch / p50.", ""]
    lines += _md_table(RESULT_HEADERS, [result_cells(r) for r in report.results])
    if noisy := noisy_lines(report.results):
        lines += [""] + [f"- noisy: {line}" for line in noisy]
    lines += [f"- {NPU_ONLY}: {line}" for line in npu_lines(report.results)]
    if report.results:
        lines += ["", "Engines: " + "; ".join(sorted({f"{r.backend} = {r.engine}" for r in report.results}))]
    for prof in report.profiles:
        lines += ["", f"Profile: {prof['model']} {prof['backend']} {prof['precision']} b{prof['batch']} "
                  f"({prof['engine']}; {prof['total_ms']:.2f} ms per run; {prof['note']}):", ""]
        lines += _md_table(["op kind", "count", "ms", "share"], [[op["kind"], str(op["count"] or ""),
                                                                 f"{op['ms']:.3f}", f"{100 * op['share']:.1f}%"]
                                                                for op in prof["ops"]])
    for title_, rows in (("Skipped", report.skipped), ("Failed", report.failed)):
        if rows:
            lines += ["", f"{title_}:", ""] + [f"- {s.backend}{f' ({s.model})' if s.model else ''} on {s.device}: "
                                               f"{s.reason}" for s in rows]
    return "\n".join(lines) + "\n"


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    right = {i for i, h in enumerate(headers) if h not in ("model", "form", "backend", "device", "precision")}
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"]
    return out + ["| " + " | ".join(cells) + " |" for cells in rows]
