"""Per-op profile of a `.pte` program: ExecuTorch's event tracer (ETDump) times every
XNNPACK operator inside the delegate and every portable kernel outside it; per op kind the
per-op medians over the runs are summed (XNNPACK ops are named by kind, e.g. "Fully
Connected (NC, F32) GEMM", "Convolution (NHWC, QS8) DWConv")."""

from __future__ import annotations

import collections
import re
from pathlib import Path

from casvit_deploy.runtime.profile import OpProfile

NOT_OPS = {"Method::init", "Program::load_method", "Method::execute", "DELEGATE_CALL", "OPERATOR_CALL"}


def _kind(event: str) -> str:
    return re.sub(r"\s*#\d+$", "", event).replace("native_call_", "portable ")


def profile(artifact: Path, threads: int, runs: int, work_dir: Path, stat: str = "p50") -> OpProfile:
    """The program at `artifact` run `runs` times on a seeded input; its ETDump is written
    in `work_dir` (a folder the caller removes). Each op's time is its `stat` over the runs:
    "p50", or "min" (on a loaded machine, what an op takes when it is not descheduled).
    Threads: the process's ExecuTorch threadpool (bench sets it)."""
    import torch
    from executorch.devtools import Inspector
    from executorch.extension.pybindings import portable_lib

    from casvit_deploy.quiet import native_stderr_silenced

    with native_stderr_silenced():  # the runtime's cpuinfo lines
        program = portable_lib._load_for_executorch(str(artifact), enable_etdump=True, debug_buffer_size=0)
        sizes = program.method_meta("forward").input_tensor_meta(0).sizes()
        image = torch.randn(*sizes, generator=torch.Generator().manual_seed(0))
        for _ in range(runs):
            program.forward((image,))
    dump = Path(work_dir) / "trace.etdp"
    program.write_etdump_result_to_file(str(dump), str(dump.with_suffix(".bin")))
    frame = Inspector(etdump_path=str(dump)).to_dataframe()
    kinds: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])
    total = 0.0
    for name, ms in zip(frame["event_name"], frame[f"{stat} (ms)"]):
        if name == "Method::execute":
            total = float(ms)
        elif name not in NOT_OPS:
            kinds[_kind(name)][0] += 1
            kinds[_kind(name)][1] += float(ms)
    return OpProfile(f"ExecuTorch ETDump (per-op {stat})", total, {k: (n, t) for k, (n, t) in kinds.items()},
                     f"{runs} runs, {threads} thread(s); tracing adds a little time per op")
