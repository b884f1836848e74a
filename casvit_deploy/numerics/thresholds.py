"""Pass/fail thresholds, with defaults by the artifact's precision.

An output passes when, over its whole input set,
  max|out - ref| <= atol + rtol * max|ref|   (scale-aware, so near-zero logits do not
                                              turn a relative check into noise),
  min per-sample cosine(out, ref) >= min_cosine,
  top-1 agreement with the reference >= min_top1 (classifier outputs),
and it has the reference's name, shape and dtype and no NaN/Inf.

Per-block localization calls a block divergent when its relative error
max|out - ref| / max|ref| exceeds `block_rtol`.

int8 (and every lossy artifact: settings.judged_as) is judged by agreement, not
by an fp32-style tolerance (atol and rtol are None: not
judged unless given): per-sample cosine, SNR in dB (10 log10 of signal over error power),
top-1 agreement and top-5 overlap; a block is divergent when its SQNR (the SNR of its
output against the fp32 block's) falls below `block_min_sqnr_db`. How the int8 defaults
were chosen is in benchmarks/INT8.md.

Calibration (CoreML via the MIL interpreter, 16 photographs, 224, random weights): fp32
artifacts of every format sit near max_rel 1e-6 and cosine 1 - 1e-13; fp16 programs at
max_rel 7.7e-4, cosine 0.9999997, worst block 2.2e-3 (XS and T), several times inside
the fp16 defaults. fp16 allows one top-1 flip in ten for near-tied classes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from casvit_deploy.errors import UsageError
from casvit_deploy.settings import Precision, judged_as


@dataclass(frozen=True)
class Thresholds:
    atol: float | None  # None (with rtol None): max error not judged
    rtol: float | None
    min_cosine: float
    min_top1: float
    block_rtol: float | None
    min_snr_db: float | None = None
    min_top5: float | None = None
    block_min_sqnr_db: float | None = None

    @property
    def judges_max_error(self) -> bool:
        return self.atol is not None or self.rtol is not None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ThresholdOverrides:
    """Thresholds a user sets (None: the precision's default); checked when made."""

    atol: float | None = None
    rtol: float | None = None
    min_cosine: float | None = None
    min_top1: float | None = None
    block_rtol: float | None = None
    min_snr_db: float | None = None
    min_top5: float | None = None

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            bounded = f.name in ("min_cosine", "min_top1", "min_top5")
            if not math.isfinite(value) or (value < 0 and f.name != "min_snr_db") or (bounded and value > 1):
                allowed = "from 0 to 1" if bounded else "a finite number" + ("" if f.name == "min_snr_db" else " >= 0")
                raise UsageError(f"--{f.name.replace('_', '-')} {value}: must be {allowed}")

    def apply(self, base: Thresholds) -> Thresholds:
        """`base` with every given value; giving only one of atol/rtol judges max error with the other at 0."""
        changed = replace(base, **{f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None})
        if changed.judges_max_error and (changed.atol is None or changed.rtol is None):
            changed = replace(changed, atol=changed.atol or 0.0, rtol=changed.rtol or 0.0)
        return changed


DEFAULTS: dict[Precision, Thresholds] = {
    Precision.FP32: Thresholds(atol=1e-4, rtol=1e-4, min_cosine=0.99999, min_top1=0.99, block_rtol=1e-4),
    Precision.FP16: Thresholds(atol=1e-2, rtol=5e-3, min_cosine=0.9999, min_top1=0.9, block_rtol=1e-2),
    Precision.INT8: Thresholds(atol=None, rtol=None, min_cosine=0.98, min_top1=0.5, block_rtol=None,
                               min_snr_db=15.0, min_top5=0.6, block_min_sqnr_db=10.0),
}


def defaults_for(precision: Precision, lossy: bool = False) -> Thresholds:
    """The default thresholds of an artifact of `precision` (lossy options: see judged_as)."""
    return DEFAULTS[judged_as(precision, lossy)]
