"""The load check of a freshly written artifact: opened through its runner (`open_runner`,
as parity and bench open it) and judged against the exported model with parity's metrics
and the default thresholds of its precision, on a seeded input of the artifact's batch
(every output by name). An artifact with a free height and width is also checked at a
second, different size."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from casvit_deploy.export.graph import block_outputs, example_input
from casvit_deploy.numerics import defaults_for, judge
from casvit_deploy.runtime.base import RunnerOptions
from casvit_deploy.runtime.eager import EagerRunner
from casvit_deploy.runtime.registry import open_runner
from casvit_deploy.settings import RESOLUTION_MAX, RESOLUTION_STEP, Resolution


@dataclass
class LoadCheck:
    ran: bool
    runner: str = ""                  # what executed the artifact, or why it did not run
    failures: list[str] = field(default_factory=list)
    max_abs: float | None = None
    max_rel: float | None = None
    blocks_found: int | None = None   # block outputs the runner can read inside the artifact
    blocks_missing: list[str] = field(default_factory=list)
    sizes: list[str] = field(default_factory=list)  # the input sizes checked

    @classmethod
    def not_run(cls, reason: str) -> "LoadCheck":
        return cls(False, f"not run: {reason}")

    def to_dict(self) -> dict:
        return asdict(self)


def _shifted(side: int, delta: int) -> int:
    return side + delta if side + delta <= RESOLUTION_MAX else side - delta


def other_size(size: Resolution) -> Resolution:
    """A second size for checking a free height and width: height 32 and width 64 away
    from the exported ones, so neither side keeps its value and a square becomes oblong."""
    return Resolution(_shifted(size.height, RESOLUTION_STEP), _shifted(size.width, 2 * RESOLUTION_STEP))


def load_check(artifact: Path, job, program, output_names: tuple[str, ...] | None = None) -> LoadCheck:
    """Run the artifact at `artifact` and `job.model` on the same seeded batch and judge them
    (outputs named `output_names`, default the job's)."""
    names = tuple(output_names or job.output_names)
    sizes = [job.resolution] + ([other_size(job.resolution)] if job.dynamic_shape else [])
    blocks = block_outputs(program, job.model)
    reference = EagerRunner(job.model, output_names=names)
    options = RunnerOptions(preprocessing=job.preprocessing, output_names=names)
    with open_runner(artifact, options) as runner:
        metrics, failures = [], []
        for size in sizes:
            image = example_input(job.batch, size, job.dynamic_batch).numpy()
            found, missed = judge(runner.run(image), reference.run(image), defaults_for(job.precision))
            metrics += found
            failures += [f"{size}: {f}" if job.dynamic_shape else f for f in missed]
        check = LoadCheck(True, runner.description, failures,
                          max((m.max_abs for m in metrics), default=None),
                          max((m.max_rel for m in metrics), default=None), sizes=[str(s) for s in sizes])
        if runner.supports_intermediates:
            found = runner.block_tensors(blocks)
            check.blocks_found = sum(v is not None for v in found.values())
            check.blocks_missing = [b for b, v in found.items() if v is None]
    return check
