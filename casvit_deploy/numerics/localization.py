"""Per-block comparison results: one block's output in an artifact against the reference
(`compare_block`), and the per-block table of one sample (`Localization`), however the
block outputs were obtained (read from the artifact, or from a rebuilt simulation) or, where
a runtime hides them, what was audited instead."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from casvit_deploy.numerics.metrics import plain, sqnr_db
from casvit_deploy.numerics.thresholds import Thresholds

BLOCK_STATUSES = ("ok", "diverged", "unmapped", "mismatch")


@dataclass
class BlockResult:
    """One block's output in the artifact against the reference."""

    block: str
    tensor: str | None
    status: str
    max_abs: float | None = None
    rel_err: float | None = None
    cosine: float | None = None
    note: str = ""
    sqnr_db: float | None = None  # int8: the block's SQNR against the fp32 block output

    def to_dict(self) -> dict:
        return {k: plain(v) for k, v in self.__dict__.items()}


@dataclass
class Localization:
    """Per-block comparison on one sample; `first_divergent` names where it starts."""

    engine: str
    input_set: str
    sample: str
    method: str
    blocks: list[BlockResult] = field(default_factory=list)
    first_divergent: str | None = None
    note: str = ""

    def to_dict(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k != "blocks"}
        return data | {"blocks": [b.to_dict() for b in self.blocks]}


def _within(rel_err: float, sqnr: float, limits: Thresholds) -> bool:
    if limits.block_min_sqnr_db is not None and not sqnr >= limits.block_min_sqnr_db:
        return False
    return limits.block_rtol is None or rel_err <= limits.block_rtol


def compare_block(block: str, tensor: str | None, out, ref: np.ndarray, limits: Thresholds) -> BlockResult:
    if tensor is None or out is None:
        return BlockResult(block, tensor, "unmapped", note="no matching tensor in the artifact")
    out = np.asarray(out, dtype=np.float64)
    if out.size != ref.size:
        return BlockResult(block, tensor, "mismatch", note=f"shape {list(out.shape)} vs reference {list(ref.shape)}")
    out, ref = out.reshape(ref.shape), ref.astype(np.float64)
    err = float(np.max(np.abs(out - ref)))
    scale = float(np.max(np.abs(ref))) or 1.0
    norms = np.linalg.norm(out) * np.linalg.norm(ref)
    cosine = float(np.sum(out * ref) / norms) if norms > 0 else float(np.array_equal(out, ref))
    finite = bool(np.all(np.isfinite(out)))
    sqnr = sqnr_db(out, ref)
    status = "ok" if finite and _within(err / scale, sqnr, limits) else "diverged"
    return BlockResult(block, tensor, status, err, err / scale, cosine, "" if finite else "NaN/Inf", sqnr)
