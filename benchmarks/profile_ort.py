"""Per-op profile of an ONNX artifact in ONNX Runtime (CPU), convs split by kind.

    python benchmarks/profile_ort.py models/cache/<key>/casvit_xs_224_fp32.onnx --threads 1

Prints, per op type, the mean kernel time per run and its share; Conv is split into
1x1 pointwise, 3x3 depthwise and dense 3x3 (stem, embeddings) with the GFLOP/s each
achieves (2 x MACs from the weight and output shapes ORT records).
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np


def conv_kind(weight_shape: list[int]) -> str:
    if weight_shape[2] == 1:
        return "Conv 1x1 (pointwise)"
    return "Conv 3x3 depthwise" if weight_shape[1] == 1 else "Conv 3x3 dense (stem/embed)"


def profile(path: Path, threads: int, runs: int) -> tuple[dict, dict]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {i.name: np.random.default_rng(0).standard_normal(
        [d if isinstance(d, int) else 1 for d in i.shape], dtype=np.float32) for i in session.get_inputs()}
    for _ in range(runs):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    micros, flops = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        args, kind = e["args"], e["args"]["op_name"]
        if kind == "Conv":
            weight = list(args["input_type_shape"][1].values())[0]
            out = list(args["output_type_shape"][0].values())[0]
            kind = conv_kind(weight)
            flops[kind] += 2 * int(np.prod(out)) * int(np.prod(weight[1:]))
        micros[kind] += e["dur"]
    return ({k: v / runs / 1e3 for k, v in micros.items()}, {k: v / runs / 1e9 for k, v in flops.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    ms, gflop = profile(args.artifact, args.threads, args.runs)
    total = sum(ms.values())
    print(f"{args.artifact.name}: kernel time {total:.2f} ms/run ({args.threads} thread(s))")
    for kind, t in sorted(ms.items(), key=lambda kv: -kv[1]):
        rate = f"  {gflop[kind] / (t / 1e3):6.1f} GFLOP/s ({gflop[kind]:.3f} GFLOP)" if kind in gflop else ""
        print(f"  {kind:28s} {t:7.2f} ms {100 * t / total:5.1f}%{rate}")


if __name__ == "__main__":
    main()
