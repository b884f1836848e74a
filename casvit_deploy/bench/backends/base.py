"""What a backend is: something that says whether it can run here, and prepares one case."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from casvit_deploy.artifacts.files import artifact_size
from casvit_deploy.bench.timing import WallClock
from casvit_deploy.paths import CACHE
from casvit_deploy.settings import Device, Form, Precision, Resolution

INPUT_SEED = 0


@dataclass(frozen=True)
class Case:
    """One measurement: a model in one form on one backend, device, precision and batch."""

    label: str  # model label in reports, e.g. "xs" or an artifact name
    loaded: object  # model.loading.LoadedModel; None when benchmarking a bare artifact
    form: Form
    backend: str
    device: Device
    precision: Precision
    batch: int
    resolution: Resolution
    threads: int
    channels_last: bool = False
    compile_mode: str = "default"
    disable: tuple[str, ...] = ()
    cache_dir: Path = CACHE
    artifact: Path | None = None  # given by the user instead of exported


@dataclass
class Prepared:
    """A loaded case: `run()` performs one inference on a fixed input batch."""

    run: Callable[[], object]
    engine: str
    load_s: float  # cold start: model build / session creation, export excluded
    clock: object = field(default_factory=WallClock)
    passes: list[str] = field(default_factory=list)
    artifact: Path | None = None
    artifact_mb: float | None = None
    export_s: float | None = None  # None: not exported in this run (cached or not needed)
    threads: int | None = None
    close: Callable[[], None] = lambda: None
    agreement: dict | None = None  # an int8 artifact's agreement with fp32, from its manifest
    npu_only: bool = False  # its manifest says it is for NPU execution providers (slower than fp32 on CPU)


class Backend(Protocol):
    """A backend may also set `time_budget_s`: seconds of timing per case, for backends too
    slow for the usual number of runs (the schedule is then cut, see Schedule.fitted)."""

    name: str
    summary: str

    def unavailable(self, device: Device) -> str | None:
        """Why this backend cannot run on `device` here, or None when it can."""
        ...

    def unsupported(self, precision: Precision) -> str | None:
        """Why this backend cannot run `precision`, or None when it can."""
        ...

    def prepare(self, case: Case, progress: Callable[[str], None]) -> Prepared:
        ...


@functools.lru_cache(maxsize=2)
def input_batch(batch: int, resolution: Resolution) -> np.ndarray:
    """A seeded standard-normal float32 NCHW batch (timing does not depend on values).
    Cached, so large batches are generated once per run; no runner writes to its input."""
    rng = np.random.default_rng(INPUT_SEED)
    return rng.standard_normal(resolution.shape(batch), dtype=np.float32)


def size_mb(path: Path) -> float:
    """An artifact's size on disk (file, or all of an .mlpackage folder), in MiB."""
    return artifact_size(path) / 2**20
