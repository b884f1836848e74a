"""Mixed precision: the fewest float blocks that bring an int8 model to a target cosine.

Greedy on the per-block error table: each trial quantizes with the blocks kept so far,
measures the output's agreement with fp32 and every block's SQNR, and the next trial
also keeps float the block where the most error entered (numerics/blocks.py: the largest
rise of the noise-to-signal ratio over the block before) among those still int8. It stops at the first trial whose smallest per-sample
cosine reaches the target, or when no block is left. The fewest in this greedy order,
not an exhaustive search over subsets (2^19 for S/M/T).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from casvit_deploy.model.blocks import FINAL_OUTPUT
from casvit_deploy.numerics import OutputMetrics, compare
from casvit_deploy.numerics.blocks import BlockError, block_errors


@dataclass
class Trial:
    kept: tuple[str, ...]          # targets kept float
    agreement: OutputMetrics       # final output against fp32
    blocks: list[BlockError]       # per-block SQNR against fp32

    def reaches(self, min_cosine: float) -> bool:
        return self.agreement.cosine >= min_cosine

    def summary(self) -> dict:
        m = self.agreement
        return {"kept": list(self.kept), "cosine": m.cosine, "snr_db": m.snr_db, "top1": m.top1_agreement,
                "top5": m.top5_overlap}


def measure(kept: tuple[str, ...], outputs: dict[str, np.ndarray], references: dict[str, np.ndarray],
            order: list[str]) -> Trial:
    """A trial from block outputs (FINAL_OUTPUT: the logits) of the quantized and fp32 models."""
    return Trial(kept, compare("logits", outputs[FINAL_OUTPUT], references[FINAL_OUTPUT]),
                 block_errors(outputs, references, order))


def next_block(trial: Trial, candidates: list[str]) -> str | None:
    """The candidate not yet kept float where the most error entered."""
    open_blocks = [b for b in trial.blocks if b.block in candidates and b.block not in trial.kept]
    return max(open_blocks, key=lambda b: b.noise_added).block if open_blocks else None


def search(evaluate: Callable[[tuple[str, ...]], Trial], start: tuple[str, ...], candidates: list[str],
           min_cosine: float, progress: Callable[[str], None] = lambda text: None) -> list[Trial]:
    """Every trial in order; the last one is the choice (it reaches `min_cosine` unless
    every candidate is already float)."""
    trials = [evaluate(start)]
    while not trials[-1].reaches(min_cosine):
        block = next_block(trials[-1], candidates)
        if block is None:
            break
        progress(f"keep {block} float (cosine {trials[-1].agreement.cosine:.5f} < {min_cosine})")
        trials.append(evaluate(trials[-1].kept + (block,)))
    return trials
