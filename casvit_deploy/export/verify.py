"""The load check of a freshly written artifact: opened through its runner (`open_runner`,
as parity and bench open it) and judged against the exported model with parity's metrics
and the default thresholds of its precision, on a seeded input of the artifact's batch
(int8 exporters pass photographs: agreement on noise means little)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from casvit_deploy.data.batches import run_in_batches
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
    samples: int = 0
    agreement: dict = field(default_factory=dict)  # cosine, snr_db, top1, top5 of the first output

    @classmethod
    def not_run(cls, reason: str) -> "LoadCheck":
        return cls(False, f"not run: {reason}")

    def to_dict(self) -> dict:
        return asdict(self)


def _agreement(metrics) -> dict:
    if not metrics:
        return {}
    m = metrics[0]
    return {"cosine": m.cosine, "snr_db": m.snr_db, "top1": m.top1_agreement, "top5": m.top5_overlap}


def load_check(artifact: Path, job, program, head: Head = Head.LOGITS, images=None, precision=None) -> LoadCheck:
    """Run the artifact at `artifact` and `job.model` (with `head` on top) on the same
    `images` (default: a seeded batch) and judge them by the defaults of `precision`
    (default: the job's)."""
    images = example_input(job.batch, job.resolution, job.dynamic_batch).numpy() if images is None else images
    reference = EagerRunner(job.model, head=head).run(images)
    blocks = block_outputs(program, job.model)
    with open_runner(artifact, RunnerOptions(preprocessing=job.preprocessing)) as runner:
        outputs = run_in_batches(runner.run, images, None if job.dynamic_batch else job.batch)
        metrics, failures = judge(outputs, reference, defaults_for(precision or job.precision))
        scores = [m for m in metrics if m.max_abs is not None]  # labels have no error size
        check = LoadCheck(True, runner.description, failures, max((m.max_abs for m in scores), default=None),
                          max((m.max_rel for m in scores), default=None), samples=len(images),
                          agreement=_agreement(scores))
        if runner.supports_intermediates:
            found = runner.block_tensors(blocks)
            check.blocks_found = sum(v is not None for v in found.values())
            check.blocks_missing = [b for b, v in found.items() if v is None]
    return check
