"""Per-block quantization error: each block's SQNR against the fp32 block output, and
how much error entered at that block: the rise of the noise-to-signal power ratio
10^(-SQNR/10) over the block before (error that enters early is carried by every later
block, so SQNR only falls along the network; its drops show where the error enters).
Shared by parity's per-block table and the search for blocks to keep float."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from casvit_deploy.numerics.metrics import plain, sqnr_db


@dataclass
class BlockError:
    block: str
    sqnr_db: float
    noise_added: float  # noise-to-signal ratio added at this block (may be < 0: a block can shrink it)
    previous_db: float | None = None  # the block before's SQNR

    def to_dict(self) -> dict:
        return {k: plain(v) for k, v in self.__dict__.items()}


def _noise_ratio(db: float) -> float:
    return 0.0 if db == math.inf else 10 ** (-db / 10)


def block_errors(outputs: dict[str, np.ndarray], references: dict[str, np.ndarray],
                 order: list[str]) -> list[BlockError]:
    """SQNR of every block in `order` present in both, in that order."""
    errors: list[BlockError] = []
    for block in order:
        if block not in outputs or block not in references:
            continue
        value = sqnr_db(np.asarray(outputs[block]).reshape(references[block].shape), references[block])
        previous = errors[-1].sqnr_db if errors else None
        added = _noise_ratio(value) - (_noise_ratio(previous) if previous is not None else 0.0)
        errors.append(BlockError(block, value, added if math.isfinite(added) else 0.0, previous))
    return errors
