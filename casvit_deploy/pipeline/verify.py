"""The load check of a freshly written artifact: opened through its runner (`open_runner`,
as parity and bench open it) and judged against the exported model with parity's metrics
and the default thresholds of its precision, on a seeded input of the artifact's batch
(every output by name; int8 exporters pass photographs: agreement on noise means little).
An artifact with a free height and width is also checked at a second, different size."""

from __future__ import annotations

import math
from pathlib import Path

from casvit_deploy.data.batches import run_in_batches
from casvit_deploy.export.base import LoadCheck
from casvit_deploy.export.graph import block_outputs, example_input
from casvit_deploy.numerics import defaults_for, judge
from casvit_deploy.runtime.base import RunnerOptions
from casvit_deploy.runtime.eager import EagerRunner
from casvit_deploy.settings import RESOLUTION_MAX, RESOLUTION_STEP, Head, Resolution
from casvit_deploy.store.runners import open_runner


def _agreement(metrics) -> dict:
    if not metrics:
        return {}
    m = metrics[0]  # an exact match has an infinite SNR, which JSON cannot hold: recorded as None
    snr = m.snr_db if m.snr_db is not None and math.isfinite(m.snr_db) else None
    return {"cosine": m.cosine, "snr_db": snr, "top1": m.top1_agreement, "top5": m.top5_overlap}


def _shifted(side: int, delta: int) -> int:
    return side + delta if side + delta <= RESOLUTION_MAX else side - delta


def other_size(size: Resolution) -> Resolution:
    """A second size for checking a free height and width: height 32 and width 64 away
    from the exported ones, so neither side keeps its value and a square becomes oblong."""
    return Resolution(_shifted(size.height, RESOLUTION_STEP), _shifted(size.width, 2 * RESOLUTION_STEP))


def _batches(job, images) -> list[tuple[str, object]]:
    """(size, NCHW batch) pairs to check: `images`, else a seeded batch at the job's size and,
    with a free height and width, at a second size."""
    if images is not None:
        return [(str(job.resolution), images)]
    sizes = [job.resolution] + ([other_size(job.resolution)] if job.dynamic_shape else [])
    return [(str(size), example_input(job.batch, size, job.dynamic_batch).numpy()) for size in sizes]


def load_check(artifact: Path, job, program, head: Head = Head.LOGITS, images=None, precision=None,
               lossy: bool = False, output_names: tuple[str, ...] | None = None) -> LoadCheck:
    """Run the artifact at `artifact` and `job.model` (with `head` on top) on the same
    batches (`_batches`) and judge every output (named `output_names`, default the job's)
    by the defaults of `precision` (default: the job's; `lossy`: by agreement, as int8)."""
    reference = EagerRunner(job.model, output_names=tuple(output_names or job.output_names) or None, head=head)
    batches = _batches(job, images)
    blocks = block_outputs(program, job.model)
    options = RunnerOptions(preprocessing=job.preprocessing, output_names=reference.output_names)
    with open_runner(artifact, options) as runner:
        metrics, failures = [], []
        for size, batch in batches:
            outputs = run_in_batches(runner.run, batch, None if job.dynamic_batch else job.batch)
            found, missed = judge(outputs, reference.run(batch), defaults_for(precision or job.precision, lossy))
            metrics += found
            failures += [f"{size}: {f}" if len(batches) > 1 else f for f in missed]
        scores = [m for m in metrics if m.max_abs is not None]  # labels have no error size
        check = LoadCheck(True, runner.description, failures, max((m.max_abs for m in scores), default=None),
                          max((m.max_rel for m in scores), default=None), samples=sum(len(b) for _, b in batches),
                          agreement=_agreement(scores), sizes=[size for size, _ in batches])
        if runner.supports_intermediates:
            found = runner.block_tensors(blocks)
            check.blocks_found = sum(v is not None for v in found.values())
            check.blocks_missing = [b for b, v in found.items() if v is None]
    return check
