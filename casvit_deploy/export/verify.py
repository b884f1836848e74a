"""The load check of a freshly written artifact: opened through its runner (`open_runner`,
as parity and bench open it) and judged against the exported model with parity's metrics
and the default thresholds of its precision, on a seeded input of the artifact's batch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from casvit_deploy.export.graph import block_outputs, example_input
from casvit_deploy.numerics import defaults_for, judge
from casvit_deploy.runtime.base import RunnerOptions
from casvit_deploy.runtime.eager import EagerRunner
from casvit_deploy.runtime.registry import open_runner
from casvit_deploy.settings import Head


@dataclass
class LoadCheck:
    ran: bool
    runner: str = ""                  # what executed the artifact, or why it did not run
    failures: list[str] = field(default_factory=list)
    max_abs: float | None = None
    max_rel: float | None = None
    blocks_found: int | None = None   # block outputs the runner can read inside the artifact
    blocks_missing: list[str] = field(default_factory=list)

    @classmethod
    def not_run(cls, reason: str) -> "LoadCheck":
        return cls(False, f"not run: {reason}")

    def to_dict(self) -> dict:
        return asdict(self)


def load_check(artifact: Path, job, program, head: Head = Head.LOGITS) -> LoadCheck:
    """Run the artifact at `artifact` and `job.model` (with `head` on top) on the same seeded
    batch and judge them."""
    image = example_input(job.batch, job.resolution, job.dynamic_batch).numpy()
    reference = EagerRunner(job.model, head=head).run(image)
    blocks = block_outputs(program, job.model)
    with open_runner(artifact, RunnerOptions(preprocessing=job.preprocessing)) as runner:
        metrics, failures = judge(runner.run(image), reference, defaults_for(job.precision))
        scores = [m for m in metrics if m.max_abs is not None]  # labels have no error size
        check = LoadCheck(True, runner.description, failures, max((m.max_abs for m in scores), default=None),
                          max((m.max_rel for m in scores), default=None))
        if runner.supports_intermediates:
            found = runner.block_tensors(blocks)
            check.blocks_found = sum(v is not None for v in found.values())
            check.blocks_missing = [b for b, v in found.items() if v is None]
    return check
