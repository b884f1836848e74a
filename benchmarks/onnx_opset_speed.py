"""ONNX Runtime latency of the opset choices: opset 20 (one Gelu node per GELU), opset 18
as shipped (erf form ordered for ONNX Runtime's Gelu fusion) and opset 18 with the erf
chain as the exporter writes it (no fusion), in interleaved rounds in one process.

    python benchmarks/onnx_opset_speed.py --variant xs --resolution 224 --threads 2 --rounds 7

Prints the median latency of each and the ratios, with the CPU and the same-run fp32 GEMM
rate; --json writes them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _unordered(path: Path, out: Path) -> Path:
    """The file with each ordered GELU put back in the exporter's order x·((erf + 1)·½)."""
    import onnx

    model = onnx.load(str(path))
    producer = {o: n for n in model.graph.node for o in n.output}
    for last in model.graph.node:
        first = producer.get(last.input[0]) if last.op_type == "Mul" and last.input else None
        if first is None or not first.output[0].endswith("_before_half"):
            continue
        x, added = first.input
        half = last.input[1]
        del first.input[:], last.input[:]
        first.input.extend([added, half])
        last.input.extend([x, first.output[0]])
    onnx.save(model, str(out))
    return out


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _time(session, x, runs: int) -> float:
    for _ in range(3):
        session.run(None, {"image": x})
    start = time.perf_counter()
    for _ in range(runs):
        session.run(None, {"image": x})
    return (time.perf_counter() - start) / runs * 1e3


def main() -> None:
    import torch

    from casvit_deploy.bench.gemm import gemm_gflops
    from casvit_deploy.formats.onnx.options import OnnxOptions
    from casvit_deploy.machine import cpu_model
    from casvit_deploy.model import load_model
    from casvit_deploy.pipeline import export_model
    from casvit_deploy.quiet import quiet_third_party

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="xs")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(variant=args.variant)
    with tempfile.TemporaryDirectory() as tmp, quiet_third_party():
        files = {f"opset {o}": export_model(loaded, "onnx", Path(tmp) / str(o), resolution=args.resolution,
                                            options=OnnxOptions(o)).artifact for o in (20, 18)}
        files["opset 18, erf chain as exported"] = _unordered(files["opset 18"], Path(tmp) / "unordered.onnx")
        sessions = {name: _session(path, args.threads) for name, path in files.items()}
        x = np.random.default_rng(0).standard_normal((1, 3, args.resolution, args.resolution)).astype(np.float32)
        times: dict[str, list[float]] = {name: [] for name in sessions}
        gemm = []
        for _ in range(args.rounds):
            gemm.append(gemm_gflops())
            for name, session in sessions.items():
                times[name].append(_time(session, x, args.runs))
    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians["opset 20"]
    result = {"cpu": cpu_model(), "threads": args.threads, "variant": args.variant, "resolution": args.resolution,
              "gemm_gflops_fp32": round(statistics.median(gemm), 1), "rounds": args.rounds,
              "median_ms": {k: round(v, 3) for k, v in medians.items()},
              "ratio_to_opset_20": {k: round(v / base, 3) for k, v in medians.items()},
              "per_round_ms": {k: [round(v, 3) for v in t] for k, t in times.items()}}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
