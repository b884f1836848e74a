"""Per-op profile of an `.onnx` file in ONNX Runtime's CPU provider: its profiler's kernel
times per op type, Conv split into pointwise 1x1, depthwise 3x3 and dense 3x3 (the stem
and embeddings) since they run different kernels; QLinearConv likewise."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np

from casvit_deploy.runtime.profile import OpProfile


def conv_kind(op: str, weight_shape: list[int]) -> str:
    """e.g. "Conv 1x1 (pointwise)" from the weight shape (O, I/groups, kH, kW)."""
    if weight_shape[2] == 1:
        return f"{op} 1x1 (pointwise)"
    return f"{op} 3x3 depthwise" if weight_shape[1] == 1 else f"{op} 3x3 dense (stem/embed)"


def _kind(args: dict) -> str:
    op = args["op_name"]
    if op not in ("Conv", "QLinearConv", "FusedConv") or len(args.get("input_type_shape", [])) < 2:
        return op
    weight_at = 3 if op == "QLinearConv" else 1
    weight = list(args["input_type_shape"][weight_at].values())[0]
    return conv_kind(op, weight) if len(weight) == 4 else op


def profile(artifact: Path, threads: int, runs: int, work_dir: Path) -> OpProfile:
    """The graph at `artifact` run `runs` times on a seeded input with ONNX Runtime's
    profiler on (its trace file written in `work_dir`, a folder the caller removes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(work_dir) / "ort")
    session = ort.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape], dtype=np.float32)
            for i in session.get_inputs()}
    for _ in range(runs):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    micros, counts = collections.Counter(), collections.Counter()
    total = sum(e["dur"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run") / runs
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            kind = _kind(e["args"])
            micros[kind] += e["dur"]
            counts[kind] += 1
    ops = {k: (counts[k] // runs, micros[k] / runs / 1e3) for k in micros}
    return OpProfile(f"onnxruntime {ort.__version__} profiler (CPU provider)", total / 1e3, ops,
                     f"{runs} runs, {threads} thread(s); mean kernel time per run")
