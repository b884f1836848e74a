"""An optional PNG chart of throughput per case (needs matplotlib)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from casvit_deploy.atomic import atomic_path
from casvit_deploy.bench.results import BenchReport
from casvit_deploy.errors import BackendMissingError


def require_matplotlib() -> None:
    """BackendMissingError naming the extra when matplotlib is absent (checked before any work)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise BackendMissingError("--plot needs matplotlib, which is not installed: "
                                  "pip install 'casvit-deploy[plot]' (or pip install matplotlib)")


def write_plot(report: BenchReport, path: Path) -> None:
    """Horizontal bars of images/s, one per result, labelled model/form/backend/precision/batch."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    results = report.results
    labels = [f"{r.model} {r.form} {r.backend} {r.precision}{' CL' if r.channels_last else ''} b{r.batch}"
              for r in results]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(results) + 1.5))
    ax.barh(range(len(results)), [r.stats.throughput for r in results], color="tab:blue")
    ax.set_yticks(range(len(results)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("images / s (batch / p50 latency)")
    ax.set_title(f"casvit bench on {report.environment.get('cpu', '?')}"
                 + (f" / {report.environment['gpu']['name']}" if report.environment.get("gpu") else ""), fontsize=9)
    fig.tight_layout()
    try:
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
