"""Summarise the GPU run: tables from each JSON and the two GPU targets, as Markdown.

    python benchmarks/gpu_summary.py OUT_DIR > OUT_DIR/RESULTS_GPU.md
Targets (same GPU, same run): CUDA-graph fp16 batch 1 >= 5x eager fp32 batch 1;
batch-256 fp16 throughput >= 3x eager fp32 batch 256.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from casvit_deploy.bench.results import BenchReport
from casvit_deploy.bench.writers import to_markdown

PARTS = (("b1.json", "Batch 1: eager vs CUDA graphs"), ("b256.json", "Batch 256: eager fp32 vs fp16"),
         ("compile.json", "torch.compile"))


def _find(results, **want):
    return [r for r in results if all(getattr(r, k) == v for k, v in want.items())]


def targets(results) -> list[str]:
    lines = ["## Targets (p50 ratios, same GPU, same run)", "",
             "| model | form | target | baseline | candidate | ratio | target | met |", "|---|---|---|---|---|---:|---:|---|"]
    for r in results:
        if r.backend == "eager" and r.precision == "fp32" and not r.channels_last and r.batch in (1, 256):
            if r.batch == 1:
                cands = _find(results, model=r.model, form=r.form, batch=1, backend="cudagraph", precision="fp16")
                goal, what = 5.0, "cudagraph fp16 b1 latency"
            else:
                cands = _find(results, model=r.model, form=r.form, batch=256, precision="fp16")
                goal, what = 3.0, "fp16 b256 throughput"
            for c in cands:
                ratio = r.stats.p50_ms / c.stats.p50_ms
                label = f"{c.backend} {c.precision}{' CL' if c.channels_last else ''}"
                lines.append(f"| {r.model} | {r.form} | {what} | eager fp32 {r.stats.p50_ms:.2f} ms | {label} "
                             f"{c.stats.p50_ms:.2f} ms | {ratio:.2f}x | {goal:.0f}x | {'yes' if ratio >= goal else 'no'} |")
    return lines


def main(folder: Path) -> None:
    results = []
    print("# CAS-ViT GPU benchmarks\n")
    for name, title in PARTS:
        path = folder / name
        if not path.is_file():
            print(f"## {title}\n\n(not produced: see log.txt)\n")
            continue
        report = BenchReport.from_dict(json.loads(path.read_text()))
        results += report.results
        print(to_markdown(report, title).replace("# ", "## ", 1))
    print("\n".join(targets(results)))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
