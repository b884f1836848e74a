"""An optional PNG chart of throughput per case (needs matplotlib: the [plot] extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from casvit_deploy.atomic import atomic_path
from casvit_deploy.bench.environment import describe_machine
from casvit_deploy.bench.results import BenchReport, BenchResult
from casvit_deploy.errors import BackendMissingError


def require_matplotlib() -> None:
    """BackendMissingError naming the extra when matplotlib is absent (checked before any work)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise BackendMissingError("--plot needs matplotlib, which is not installed: "
                                  "pip install 'casvit-deploy[plot]' (or pip install matplotlib)")


def label(r: BenchResult) -> str:
    return f"{r.model} {r.form} {r.backend} {r.precision}{' CL' if r.channels_last else ''} b{r.batch}"


def iqr_images_per_s(r: BenchResult) -> tuple[float, float] | None:
    """(low, high) images/s over the interquartile range of latency (None without quartiles)."""
    s = r.stats
    if s.p25_ms is None or s.p75_ms is None:
        return None
    return r.batch * 1e3 / s.p75_ms, r.batch * 1e3 / s.p25_ms


def footer(report: BenchReport) -> str:
    """The machine and what the weights were, under the chart."""
    weights = "; ".join(sorted({r.weights for r in report.results})) or "no results"
    gemm = "; ".join(f"GEMM fp32 {d}: {g['fp32_gflops']:.0f} GFLOP/s" for d, g in report.gemm.items())
    return f"{describe_machine(report.environment)}\n{gemm}; weights: {weights}; {report.created}"


def write_plot(report: BenchReport, path: Path) -> None:
    """Horizontal bars of images/s (batch / p50), whiskers over the latency IQR, each bar
    labelled with its value; noisy cases are marked; the machine and weights underneath."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report.results
    values = [r.stats.throughput for r in results]
    spans = [iqr_images_per_s(r) or (v, v) for r, v in zip(results, values)]
    whiskers = [[v - lo for v, (lo, _) in zip(values, spans)], [hi - v for v, (_, hi) in zip(values, spans)]]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(results) + 2.2))
    ax.barh(range(len(results)), values, xerr=whiskers, color="tab:blue", ecolor="black", capsize=3)
    for i, (r, (_, hi)) in enumerate(zip(results, spans)):
        noisy = " (noisy)" if r.noise.reasons() else ""
        ax.text(hi, i, f"  {r.stats.throughput:.1f} img/s, {r.stats.p50_ms:.2f} ms{noisy}", va="center", fontsize=8)
    ax.set_yticks(range(len(results)), [label(r) for r in results], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max((hi for _, hi in spans), default=1) * 1.35)
    ax.set_xlabel("images / s: bar = batch / p50 latency, whiskers = interquartile range of latency")
    weights = "; ".join(sorted({r.weights for r in results}))
    ax.set_title(f"casvit bench: {weights}", fontsize=10)
    fig.text(0.01, 0.01, footer(report), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.08 + 0.02 * footer(report).count("\n"), 1, 1))
    try:
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
