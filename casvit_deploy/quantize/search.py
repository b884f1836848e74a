"""Mixed precision: the fewest float blocks that bring an int8 model within a budget.

Greedy on the per-block error table: each trial quantizes with the blocks kept so far,
measures the output's agreement with fp32 and every block's SQNR, and the next trial
also keeps float the block where the most error entered (numerics/blocks.py: the largest
rise of the noise-to-signal ratio over the block before) among those still int8. It stops
at the first trial that meets the `Criterion`, or when no block is left. The fewest in this
greedy order, not an exhaustive search over subsets (2^19 for S/M/T).

The criterion is the smallest per-sample cosine with fp32 reaching a target; or, given
labelled images and a top-1 budget, the top-1 drop against fp32 on them within the budget
(with the cosine at least `floor`, the parity gate's int8 minimum, so the artifact can pass it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from casvit_deploy.model.blocks import FINAL_OUTPUT
from casvit_deploy.numerics import OutputMetrics, compare
from casvit_deploy.numerics.accuracy import PairedDrop, hits, paired_drop, top_classes
from casvit_deploy.numerics.blocks import BlockError, block_errors

LABELLED = "labelled logits"  # the logits on the labelled images, beside the block outputs


@dataclass(frozen=True)
class Labelled:
    """A trial's top-1 on labelled images, and the fp32 model's on the same images."""

    top1: float
    reference_top1: float
    drop: PairedDrop

    @classmethod
    def of(cls, logits: np.ndarray, reference_logits: np.ndarray, labels: np.ndarray) -> "Labelled":
        """Top-1 of `logits` and of the fp32 `reference_logits` against `labels`, and the paired drop."""
        correct, reference = (hits(top_classes(values, 1), labels, 1) for values in (logits, reference_logits))
        return cls(float(correct.mean()), float(reference.mean()), paired_drop(reference, correct))

    def summary(self) -> dict:
        return {"labelled_top1": self.top1, "labelled_fp32_top1": self.reference_top1,
                "top1_drop_pp": self.drop.drop_pp, "top1_drop_ci95_pp": [self.drop.low_pp, self.drop.high_pp]}


@dataclass
class Trial:
    kept: tuple[str, ...]          # targets kept float
    agreement: OutputMetrics       # final output against fp32
    blocks: list[BlockError]       # per-block SQNR against fp32
    labelled: Labelled | None = None  # top-1 on labelled images, when the search has them
    failures: list[str] | None = None  # where the gate's thresholds are missed, when a search judges them

    def reaches(self, min_cosine: float) -> bool:
        return self.agreement.cosine >= min_cosine and not self.failures

    def summary(self) -> dict:
        m = self.agreement
        return ({"kept": list(self.kept), "cosine": m.cosine, "snr_db": m.snr_db, "top1": m.top1_agreement,
                 "top5": m.top5_overlap} | (self.labelled.summary() if self.labelled else {})
                | ({"gate_failures": self.failures} if self.failures is not None else {}))


@dataclass(frozen=True)
class Criterion:
    """When a trial is good enough: its cosine reaches `min_cosine`; or, with `max_top1_drop`
    (percentage points on labelled images), its top-1 drop is within it and its cosine at
    least `floor`."""

    min_cosine: float
    max_top1_drop: float | None = None
    floor: float = 0.0

    @property
    def name(self) -> str:
        return "cosine" if self.max_top1_drop is None else "top-1 drop on labelled data"

    def met(self, trial: Trial) -> bool:
        if self.max_top1_drop is None:
            return trial.reaches(self.min_cosine)
        return trial.labelled.drop.drop_pp <= self.max_top1_drop and trial.reaches(self.floor)

    def state(self, trial: Trial) -> str:
        """Where `trial` stands, e.g. "cosine 0.99812" or "top-1 drop 1.39 pp, cosine 0.99812"."""
        cosine = f"cosine {trial.agreement.cosine:.5f}" + (", gate thresholds missed" if trial.failures else "")
        return cosine if self.max_top1_drop is None else f"top-1 drop {trial.labelled.drop.drop_pp:.2f} pp, {cosine}"

    @property
    def target(self) -> str:
        if self.max_top1_drop is None:
            return f"cosine >= {self.min_cosine}"
        return f"top-1 drop <= {self.max_top1_drop:g} pp and cosine >= {self.floor}"

    def stopped_by(self, trials: list[Trial]) -> str:
        """Why the search ended: the criterion that chose its last trial, or that none was left."""
        if self.met(trials[-1]):
            return self.name
        return f"no block left to keep float ({self.target} not reached)"


def measure(kept: tuple[str, ...], outputs: dict[str, np.ndarray], references: dict[str, np.ndarray],
            order: list[str], labels: np.ndarray | None = None) -> Trial:
    """A trial from block outputs (FINAL_OUTPUT: the logits) of the quantized and fp32 models;
    with `labels`, also from their logits on the labelled images (LABELLED)."""
    labelled = None if labels is None else Labelled.of(outputs[LABELLED], references[LABELLED], labels)
    return Trial(kept, compare("logits", outputs[FINAL_OUTPUT], references[FINAL_OUTPUT]),
                 block_errors(outputs, references, order), labelled)


def next_block(trial: Trial, candidates: list[str]) -> str | None:
    """The candidate not yet kept float where the most error entered."""
    open_blocks = [b for b in trial.blocks if b.block in candidates and b.block not in trial.kept]
    return max(open_blocks, key=lambda b: b.noise_added).block if open_blocks else None


def first_open(trial: Trial, candidates: list[str]) -> str | None:
    """The first candidate, in the order given, not yet kept float."""
    return next((block for block in candidates if block not in trial.kept), None)


def search(evaluate: Callable[[tuple[str, ...]], Trial], start: tuple[str, ...], candidates: list[str],
           criterion: Criterion, progress: Callable[[str], None] = lambda text: None,
           pick: Callable[[Trial, list[str]], str | None] = next_block) -> list[Trial]:
    """Every trial in order, each keeping one more block float (`pick`: the one where the
    most error entered, or `first_open` for a fixed order); the last one is the choice (it
    meets `criterion` unless every candidate is already float)."""
    trials = [evaluate(start)]
    while not criterion.met(trials[-1]):
        block = pick(trials[-1], candidates)
        if block is None:
            break
        progress(f"keep {block} float ({criterion.state(trials[-1])}; want {criterion.target})")
        trials.append(evaluate(trials[-1].kept + (block,)))
    return trials
