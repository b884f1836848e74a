"""Which op kinds of an int8 program run int8, chosen by measured speed on the exporting CPU.

Whether an op kind is faster in int8 than in float depends on the CPU: on an Intel Xeon with
AVX-512 VNNI, XNNPACK's int8 depthwise convolutions and multiplies were 1.5-1.6x slower than
their fp32 forms while the 1x1 GEMMs were 2.5x faster (benchmarks/INT8.md); without a
dot-product instruction (AMD Zen 3) the GEMMs gain little. So an int8 export profiles its
program and the fp32 program on this machine (ExecuTorch's event tracer, per op kind); the
op kinds that can stay float (SPEED_KINDS) and ran slower in int8 than in fp32 are kept float
in a second candidate; the candidates are timed against fp32 in interleaved rounds, and the
faster one whose agreement with fp32 eager on the photographs stays at SPEED_MIN_COSINE or
above is the artifact. Lowering a program costs most of an export, so at most one candidate
is added. Everything is recorded: per op kind fp32 and int8 times, each candidate's speed
ratio and cosine, the CPU and its int8 instructions. On a shared machine the choice carries
the machine's noise; a phone's CPU may choose differently (--no-speed-choice: the plan as it is).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from casvit_deploy.machine import cpu_record, describe_int8
from casvit_deploy.quantize.targets import DEPTHWISE, MULTIPLIES
from casvit_deploy.runtime.profile import OpProfile

SPEED_KINDS = {DEPTHWISE: "DWConv", MULTIPLIES: "Multiply"}  # op kind -> what XNNPACK's events call it
SPEED_MIN_COSINE = 0.995  # a candidate must agree with fp32 at least this well (smallest per-sample cosine)
ROUNDS, RUNS, PROFILE_RUNS = 3, 10, 20


@dataclass
class SpeedTrial:
    """One candidate: the op kinds it keeps float beyond the plan's, its median latency, its
    speed ratio to the fp32 program (> 1: faster) and its smallest per-sample cosine."""

    extra: tuple[str, ...]
    ms: float
    vs_fp32: float
    cosine: float

    def to_dict(self) -> dict:
        return {"kept_float": list(self.extra), "ms": self.ms, "vs_fp32": self.vs_fp32, "cosine": self.cosine}


def choose(trials: list[SpeedTrial]) -> SpeedTrial:
    """The fastest trial that reaches SPEED_MIN_COSINE; the first (the plan's choice) when none does."""
    eligible = [t for t in trials if t.cosine >= SPEED_MIN_COSINE] or trials[:1]
    return max(eligible, key=lambda t: t.vs_fp32)


def kind_times(profile: OpProfile) -> dict[str, float]:
    """ms per run of each op kind of SPEED_KINDS in an ETDump profile."""
    return {kind: sum(ms for event, (_, ms) in profile.ops.items() if name in event)
            for kind, name in SPEED_KINDS.items()}


def compare_kinds(fp32: OpProfile, int8: OpProfile) -> dict[str, dict[str, float]]:
    """Each op kind of SPEED_KINDS with its fp32 and int8 time per run; those int8 ran slower
    are the candidates to keep float."""
    before, after = kind_times(fp32), kind_times(int8)
    return {kind: {"fp32_ms": before[kind], "int8_ms": after[kind]} for kind in SPEED_KINDS}


def _method(buffer: bytes):
    from executorch.runtime import Runtime

    from casvit_deploy.quiet import native_stderr_silenced

    with native_stderr_silenced():
        return Runtime.get().load_program(buffer).load_method("forward")


def _median_ms(method, x, runs: int) -> float:
    method.execute([x])
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        method.execute([x])
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def time_programs(buffers: list[bytes], shape: tuple[int, ...]) -> list[float]:
    """Median latency (ms) of each program, interleaved over ROUNDS rounds of RUNS runs each
    (the median of the per-round medians), on one seeded input of `shape`."""
    import torch

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    methods = [_method(b) for b in buffers]
    rounds: list[list[float]] = [[] for _ in methods]
    for _ in range(ROUNDS):
        for method, found in zip(methods, rounds):
            found.append(_median_ms(method, x, RUNS))
    return [statistics.median(found) for found in rounds]


def profile_of(buffer: bytes, threads: int | None, work_dir: Path) -> OpProfile:
    """The ETDump per-op-kind profile of a program (formats/executorch/profile.py)."""
    from casvit_deploy.formats.executorch.profile import profile

    path = Path(tempfile.mkdtemp(dir=work_dir, prefix=".speed-")) / "program.pte"
    path.write_bytes(buffer)
    return profile(path, threads or 1, PROFILE_RUNS, path.parent)


def min_cosine(buffer: bytes, images: np.ndarray, reference: np.ndarray, batch: int) -> float:
    """The smallest per-sample cosine of the program's first output with `reference` on `images`."""
    import torch

    from casvit_deploy.data.batches import run_in_batches
    from casvit_deploy.numerics import compare

    method = _method(buffer)
    outputs = run_in_batches(lambda chunk: {"logits": method.execute([torch.from_numpy(chunk)])[0].numpy()},
                             np.ascontiguousarray(images, dtype=np.float32), batch)
    return compare("logits", outputs["logits"], reference).cosine


def threads() -> int | None:
    """ExecuTorch's threadpool size (what the timings ran on)."""
    from executorch.extension.pybindings import portable_lib

    return portable_lib._threadpool_get_thread_count()


@dataclass
class SpeedChoice:
    """What the choice saw and chose, for the manifest."""

    kinds: dict[str, dict[str, float]]   # op kind -> fp32 and int8 ms per run (ETDump)
    trials: list[SpeedTrial]
    chosen: SpeedTrial

    def record(self) -> dict:
        """The quantization config's "speed_choice"."""
        return {"rule": f"keep float the op kinds int8 ran slower than fp32 ({', '.join(SPEED_KINDS)}), if the "
                f"program is then faster and its cosine >= {SPEED_MIN_COSINE} on the photographs",
                "op_kinds": self.kinds, "rounds": ROUNDS, "runs_per_round": RUNS, "threads": threads(),
                **cpu_record(), "trials": [t.to_dict() for t in self.trials], "chosen": list(self.chosen.extra)}

    def speed_ratio(self) -> dict:
        """The chosen program's fp32 / int8 latency here, as ONNX's cpu_speed_ratio records it."""
        from importlib.metadata import version

        return {"runtime": f"executorch {version('executorch')} (XNNPACK)", "threads": threads(), **cpu_record(),
                "fp32_ms": self.chosen.ms * self.chosen.vs_fp32, "int8_ms": self.chosen.ms,
                "ratio": self.chosen.vs_fp32, "rounds": ROUNDS, "runs_per_round": RUNS,
                "note": "measured at export on this machine; fp32 / int8 latency, > 1 means int8 is faster",
                "intended_for": "CPU (XNNPACK)", "npu_only": False}

    def reason(self) -> str:
        """Why the chosen op kinds were kept float: the measurement, on which CPU."""
        cpu = cpu_record()
        times = "; ".join(f"{k} fp32 {self.kinds[k]['fp32_ms']:.3f} ms, int8 {self.kinds[k]['int8_ms']:.3f} ms"
                          for k in self.chosen.extra)
        return (f"speed: int8 ran slower than fp32 on this CPU ({cpu['cpu']}, {describe_int8(cpu['int8_isa'])}): "
                f"{times}; kept float the program is {self.chosen.vs_fp32:.2f}x fp32, cosine {self.chosen.cosine:.5f}")


def choose_program(build: Callable[[tuple[str, ...]], bytes], fp32: bytes, shape: tuple[int, ...],
                   cosine_of: Callable[[bytes], float], work_dir: Path,
                   progress: Callable[[str], None]) -> tuple[bytes, SpeedChoice]:
    """The int8 program to ship (`build(extra op kinds kept float) -> .pte bytes`), chosen
    against the `fp32` program as the module docstring says."""
    progress("speed choice: profile fp32 and int8")
    plain = build(())
    kinds = compare_kinds(profile_of(fp32, threads(), work_dir), profile_of(plain, threads(), work_dir))
    flagged = tuple(k for k, t in kinds.items() if t["int8_ms"] > t["fp32_ms"])
    candidates = [((), plain)]
    if flagged:
        progress(f"speed choice: build int8 with {', '.join(flagged)} float")
        candidates.append((flagged, build(flagged)))
    progress(f"speed choice: time {len(candidates)} int8 program(s) against fp32")
    fp32_ms, *int8_ms = time_programs([fp32, *(b for _, b in candidates)], shape)
    trials = [SpeedTrial(extra, ms, fp32_ms / ms, cosine_of(buffer))
              for (extra, buffer), ms in zip(candidates, int8_ms)]
    chosen = choose(trials)
    return dict(candidates)[chosen.extra], SpeedChoice(kinds, trials, chosen)
