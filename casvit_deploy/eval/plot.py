"""The trade-off picture of an eval run (needs matplotlib, the [plot] extra): top-1 against
latency and against size, one labelled point per artifact, the eager fp32 top-1 as a line."""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.atomic import atomic_path
from casvit_deploy.bench.environment import capture_environment, describe_machine
from casvit_deploy.bench.plot import require_matplotlib
from casvit_deploy.eval.report import EvalReport, ModelResult

__all__ = ["require_matplotlib", "write_plot"]


def _label(result: ModelResult) -> str:
    return f"{result.format} {result.precision}"


def _panel(ax, report: EvalReport, x, xlabel: str) -> None:
    """Top-1 (%) of each artifact against x(result) (None: not drawn), eager references as lines."""
    for result in report.results:
        if result.kind == "eager":
            ax.axhline(100 * result.top1, color="grey", linestyle="--", linewidth=1)
            ax.annotate(f"{result.name}: {100 * result.top1:.2f}%", (0.01, 100 * result.top1),
                        xycoords=("axes fraction", "data"), fontsize=7, color="grey", va="bottom")
            continue
        value = x(result)
        if value is None:
            continue
        colour = "tab:red" if result.passed is False else "tab:blue"
        ax.scatter([value], [100 * result.top1], color=colour, zorder=3)
        ax.annotate(_label(result), (value, 100 * result.top1), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("top-1 (%)")
    ax.grid(alpha=0.3)


def _footer(report: EvalReport) -> str:
    machine = describe_machine(capture_environment())
    latency = f"latency: {report.latency_method}" if report.latency_method else "latency: not measured"
    return f"{report.dataset.describe()}\n{latency}\n{machine}; {report.created}"


def write_plot(report: EvalReport, path: Path) -> None:
    """Two panels, top-1 against latency (p50, ms) and against size (MB); red points fail the gate."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2))
    _panel(left, report, lambda r: r.latency["p50_ms"] if r.latency else None, "latency p50 (ms, batch as exported)")
    _panel(right, report, lambda r: r.size_bytes / 1e6 if r.size_bytes else None, "artifact size (MB)")
    fig.suptitle("casvit eval: accuracy against latency and size", fontsize=11)
    footer = _footer(report)
    fig.text(0.01, 0.01, footer, fontsize=7, va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.06 + 0.025 * footer.count("\n"), 1, 0.95))
    try:
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
