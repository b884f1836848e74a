"""Pass/fail thresholds, with defaults by the artifact's precision.

An output passes when, over its whole input set,
  max|out - ref| <= atol + rtol * max|ref|   (scale-aware, so near-zero logits do not
                                              turn a relative check into noise),
  min per-sample cosine(out, ref) >= min_cosine,
  top-1 agreement with the reference >= min_top1 (classifier outputs),
and it has the reference's name, shape and dtype and no NaN/Inf.

Per-block localization calls a block divergent when its relative error
max|out - ref| / max|ref| exceeds `block_rtol`.

Calibration (CoreML via the MIL interpreter, 16 photographs, 224, random weights): fp32
artifacts of every format sit near max_rel 1e-6 and cosine 1 - 1e-13; fp16 programs at
max_rel 7.7e-4, cosine 0.9999997, worst block 2.2e-3 (XS and T), several times inside
the fp16 defaults. fp16 allows one top-1 flip in ten for near-tied classes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Thresholds:
    atol: float
    rtol: float
    min_cosine: float
    min_top1: float
    block_rtol: float

    def with_overrides(self, **overrides: float | None) -> "Thresholds":
        """A copy with every override that is not None applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULTS: dict[str, Thresholds] = {
    "fp32": Thresholds(atol=1e-4, rtol=1e-4, min_cosine=0.99999, min_top1=0.99, block_rtol=1e-4),
    "fp16": Thresholds(atol=1e-2, rtol=5e-3, min_cosine=0.9999, min_top1=0.9, block_rtol=1e-2),
}


def defaults_for(precision: str | None) -> Thresholds:
    """The default thresholds for 'fp32' or 'fp16' (anything else is treated as fp32)."""
    return DEFAULTS.get(precision or "fp32", DEFAULTS["fp32"])
