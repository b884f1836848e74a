"""The Runner contract: every artifact is opened through `open_runner` and used as a
context manager (`with open_runner(path) as runner: ...`), which closes it.

A runner takes a float32 NCHW batch (already preprocessed) and returns the model's
outputs by name; `signature()` reads the artifact's inputs and outputs from the artifact
itself. `description` says what produced the numbers, e.g.
"onnxruntime 1.32.0 (CPUExecutionProvider)". Runners that can read block outputs from
inside the artifact declare `supports_intermediates` and implement `block_tensors` and
`run_intermediates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.artifacts.records import Signature
from casvit_deploy.settings import Device


@dataclass(frozen=True)
class RunnerOptions:
    """How to open an artifact. `open_runner` (store/runners.py) fills `preprocessing` and
    `output_names` from the artifact's manifest when they are not given."""

    threads: int | None = None                      # None: the runtime's default
    device: Device = Device.CPU
    engine: Enum | None = None                      # what executes it, where a format offers a choice (CoreML)
    preprocessing: Preprocessing | None = None      # image inputs: how the app's pixels were preprocessed
    output_names: tuple[str, ...] | None = None     # formats that store none (ExecuTorch)


class Runner:
    """Base of the per-format runners: construct, `open()`, `run()`..., `close()`."""

    supports_intermediates: bool = False

    def __init__(self, path: Path, options: RunnerOptions = RunnerOptions()):
        self.path, self.options = Path(path), options
        self.description = ""

    def open(self) -> None:
        """Load the artifact (may raise anything; `open_runner` turns it into one line)."""

    def close(self) -> None:
        """Release what `open` loaded; the runner cannot run afterwards."""

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs by name (a classifier's "logits"; a backbone's "feat_s4" ... "feat_s32") for
        one float32 NCHW batch."""
        raise NotImplementedError

    def signature(self) -> Signature:
        """The inputs and outputs (names, shapes, dtypes) read from the artifact itself, in
        the terms its exporter records in the manifest (layouts are not stored in artifacts)."""
        raise NotImplementedError

    def block_tensors(self, block_outputs: dict[str, str]) -> dict[str, str | None]:
        """The tensor inside the artifact that holds each block's output (None: not found),
        given the manifest's "block_outputs" (block -> FX node name)."""
        return {block: None for block in block_outputs}

    def run_intermediates(self, image: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__} exposes no intermediate tensors")
