"""The CPU benchmark matrix: variants x backends x batch sizes, upstream vs deploy form.

Writes benchmarks/RESULTS.md and benchmarks/results_<device>.json with the machine
described. Cases are interleaved over --rounds rounds so that load from other processes
spreads over all of them; ratios (deploy vs upstream) come from one run.

    python benchmarks/run_matrix.py                       # xs s m t; eager, onnxruntime, executorch; batch 1
    python benchmarks/run_matrix.py --variants xs --batches 1 8 --backends eager compile
"""

from __future__ import annotations

import argparse
from pathlib import Path

from casvit_deploy.atomic import write_text
from casvit_deploy.bench import BenchConfig, Schedule, run, select_backends
from casvit_deploy.bench.sources import model_sources
from casvit_deploy.bench.writers import to_json, to_markdown
from casvit_deploy.settings import Form

HERE = Path(__file__).resolve().parent


def ratio_table(report) -> list[str]:
    """Deploy-form speed-up over the upstream graph per variant/backend/batch (p50 ratio)."""
    by_key = {(r.model, r.backend, r.precision, r.batch, r.form): r for r in report.results}
    lines = ["", "## Deploy form vs upstream graph (same run, p50 upstream / p50 deploy)", "",
             "| model | backend | precision | batch | upstream ms | deploy ms | speed-up |", "|---|---|---|---:|---:|---:|---:|"]
    for (model, backend, precision, batch, form), deploy in by_key.items():
        up = by_key.get((model, backend, precision, batch, "upstream"))
        if form == "deploy" and up:
            lines.append(f"| {model} | {backend} | {precision} | {batch} | {up.stats.p50_ms:.2f} | "
                         f"{deploy.stats.p50_ms:.2f} | {up.stats.p50_ms / deploy.stats.p50_ms:.2f}x |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["xs", "s", "m", "t"])
    parser.add_argument("--backends", nargs="+", default=["eager", "onnxruntime", "executorch"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1])
    parser.add_argument("--precisions", nargs="+", default=["fp32"])
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile-mode", default="default")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--title", default="CAS-ViT benchmark matrix")
    args = parser.parse_args()

    backends, skipped = select_backends(args.backends, args.device)
    config = BenchConfig(backends, args.device, tuple(args.batches), tuple(args.precisions),
                         (Form.UPSTREAM, Form.DEPLOY),
                         args.threads, Schedule(warmup=5, iters=args.iters), args.rounds, args.channels_last,
                         args.compile_mode)
    report = run(model_sources(args.variants, None, False, args.resolution), config, skipped=skipped)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / f"results_{args.device}.json", to_json(report))
    markdown = to_markdown(report, args.title) + "\n".join(ratio_table(report)) + "\n"
    name = "RESULTS.md" if args.device == "cpu" else f"RESULTS_{args.device.upper()}.md"
    write_text(args.out / name, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
