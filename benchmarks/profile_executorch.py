"""Per-op profile of ExecuTorch `.pte` programs (XNNPACK delegate and portable kernels).

    python benchmarks/profile_executorch.py models/cache/<key>/casvit_xs_224_fp32.pte [...] --threads 2

Runs each program with ExecuTorch's event tracer (ETDump), which times every XNNPACK
operator inside the delegate and every portable kernel outside it, and prints per op kind
the sum of the per-op medians and its share of the median `Method::execute`. The row
"untraced time" is execute time not covered by an op event (dispatch between ops,
delegate entry). Tracing adds a little time per op, so the same program is also timed
untraced (median of --runs) and both totals are printed. `--stat min` sums each op's
least time over the runs instead of its median: on a loaded machine (other processes
preempting the benchmark) that filters out the time an op spent descheduled.
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import tempfile
import time
from pathlib import Path

NOT_OPS = {"Method::init", "Program::load_method", "Method::execute", "DELEGATE_CALL", "OPERATOR_CALL"}


def traced_op_times(path: Path, runs: int, stat: str = "p50") -> tuple[float, dict[str, tuple[int, float]]]:
    """(execute ms, {op kind: (count, sum of per-op ms)}) from an ETDump, each the `stat`
    (p50 or min) over the runs."""
    import torch
    from executorch.devtools import Inspector
    from executorch.extension.pybindings import portable_lib

    program = portable_lib._load_for_executorch(str(path), enable_etdump=True, debug_buffer_size=0)
    image = torch.randn(1, 3, *_resolution(program))
    for _ in range(runs):
        program.forward((image,))
    dump = Path(tempfile.mkdtemp()) / "trace.etdp"
    program.write_etdump_result_to_file(str(dump), str(dump.with_suffix(".bin")))
    frame = Inspector(etdump_path=str(dump)).to_dataframe()
    kinds: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])
    execute_ms = 0.0
    for name, ms in zip(frame["event_name"], frame[f"{stat} (ms)"]):
        if name == "Method::execute":
            execute_ms = ms
        elif name not in NOT_OPS:
            kind = re.sub(r"\s*#\d+$", "", name).replace("native_call_", "portable ")
            kinds[kind][0] += 1
            kinds[kind][1] += ms
    return execute_ms, {k: (n, t) for k, (n, t) in kinds.items()}


def untraced_ms(path: Path, runs: int) -> float:
    import torch
    from executorch.extension.pybindings import portable_lib

    program = portable_lib._load_for_executorch(str(path))
    image = torch.randn(1, 3, *_resolution(program))
    for _ in range(5):
        program.forward((image,))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        program.forward((image,))
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _resolution(program) -> tuple[int, int]:
    sizes = program.method_meta("forward").input_tensor_meta(0).sizes()
    return sizes[2], sizes[3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path, nargs="+")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--stat", choices=("p50", "min"), default="p50", help="per-op statistic over the runs")
    args = parser.parse_args()
    from casvit_deploy.bench.process import process_settings

    with process_settings(args.threads, executorch=True):
        for path in args.artifacts:
            execute_ms, kinds = traced_op_times(path, args.runs, args.stat)
            covered = sum(t for _, t in kinds.values())
            print(f"{path}: execute {execute_ms:.2f} ms traced ({args.stat}), {untraced_ms(path, args.runs):.2f} ms "
                  f"untraced (median) ({args.threads} thread(s), {args.runs} runs)")
            rows = sorted(kinds.items(), key=lambda kv: -kv[1][1]) + [("untraced time", (0, execute_ms - covered))]
            for kind, (count, ms) in rows:
                print(f"  {kind:40s} {count:4d} {ms:7.3f} ms {100 * ms / execute_ms:5.1f}%")


if __name__ == "__main__":
    main()
