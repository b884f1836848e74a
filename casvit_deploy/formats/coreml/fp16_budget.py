"""`--fp16-safe` with a top-1 budget (`--data`, `--max-top1-drop`): the blocks kept in fp32
are chosen on labelled images instead of by the pre-check's flags alone.

Blocks the pre-check flags for overflow are always kept: fp16 cannot hold their values, and
inputs other than the labelled ones (the gate's) may reach them. Then, lowest pre-check SNR
first (flagged or not), one more block at a time is kept until the whole model, run with fp16
emulated everywhere else (`run_mixed_fp16`), loses at most the budget of top-1 against fp32
on the labelled images and meets the parity gate's fp16 thresholds on the calibration
photographs. The package built from the choice is measured on the labelled images again
(`labelled_record`), since emulation is not the package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from casvit_deploy.export.base import ExportJob
from casvit_deploy.export.labelled import LabelledImages, scores
from casvit_deploy.formats.coreml.fp16_check import Fp16Report, run_mixed_fp16
from casvit_deploy.numerics import compare, defaults_for, judge
from casvit_deploy.quantize.search import Criterion, Trial, first_open, search
from casvit_deploy.runtime.eager import EagerRunner
from casvit_deploy.settings import Precision

SEARCHED_WITH = "fp16 emulated in PyTorch (the pre-check's emulation: weights and every module's output rounded)"


@dataclass
class Fp16Choice:
    """The blocks to keep in fp32, why each, and the search's trials."""

    kept: tuple[str, ...]
    reasons: dict[str, str]
    trials: list[Trial]
    chosen_by: str
    labelled: LabelledImages
    budget: float

    def record(self, ops_kept: int) -> dict:
        """The manifest's `details.fp16_safe`."""
        return {"kept_fp32": {b: self.reasons[b] for b in self.kept}, "ops_kept_fp32": ops_kept,
                "chosen_by": self.chosen_by, "max_top1_drop": self.budget, "labelled_data": self.labelled.record,
                "searched_with": SEARCHED_WITH, "search": [t.summary() for t in self.trials]}


def overflowing(report: Fp16Report) -> tuple[str, ...]:
    """The blocks the pre-check flags for overflow."""
    return tuple(f.block for f in report.findings if any(p.startswith("overflow") for p in f.problems))


def by_snr(report: Fp16Report) -> list[str]:
    """Every block, lowest pre-check fp16 SNR first: the order the search keeps them in fp32."""
    return sorted(report.block_snr_db, key=report.block_snr_db.__getitem__)


def _criterion(budget: float) -> Criterion:
    floor = defaults_for(Precision.FP16).min_cosine
    return Criterion(floor, budget, floor)


def choose_fp16_blocks(job: ExportJob, report: Fp16Report, labelled: LabelledImages, photographs: np.ndarray,
                       budget: float) -> Fp16Choice:
    """The fp32 blocks of an fp16 program within `budget` percentage points of top-1 (module doc)."""
    model, thresholds = job.model, defaults_for(Precision.FP16)
    eager = EagerRunner(model)
    reference = {"logits": eager.run(photographs)["logits"]}
    reference_labelled = scores(eager.run, labelled.images)

    def evaluate(kept: tuple[str, ...]) -> Trial:
        outputs = {"logits": run_mixed_fp16(model, photographs, kept)}
        failures = judge(outputs, reference, thresholds)[1]
        scored = labelled.judge(run_mixed_fp16(model, labelled.images, kept), reference_labelled)
        return Trial(kept, compare("logits", outputs["logits"], reference["logits"]), [], scored, failures)

    criterion, start = _criterion(budget), overflowing(report)
    trials = search(evaluate, start, by_snr(report), criterion,
                    lambda text: job.progress(f"fp16-safe: {text.replace(' float', ' in fp32')}"), first_open)
    reasons = {block: "overflow in the fp16 pre-check: kept whatever the budget" for block in start}
    for before, after in zip(trials, trials[1:]):
        block = after.kept[-1]
        reasons[block] = (f"--max-top1-drop: lowest fp16 SNR left ({report.block_snr_db[block]:.1f} dB in the "
                          f"pre-check); {criterion.state(before)} -> {criterion.state(after)} (target {criterion.target})")
    return Fp16Choice(trials[-1].kept, reasons, trials, criterion.stopped_by(trials), labelled, budget)

