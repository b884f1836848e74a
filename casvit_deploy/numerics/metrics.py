"""Error metrics between one artifact output and the reference output."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

TOP_K = 5


@dataclass
class OutputMetrics:
    """How far one output is from the reference over one input set. A label output (class
    indices) has only `top1_agreement`, the share of labels equal to the reference's."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    max_abs: float | None
    max_rel: float | None
    mean_abs: float | None
    cosine: float | None
    snr_db: float | None
    top1_agreement: float | None
    top5_overlap: float | None
    nonfinite: int
    ref_max_abs: float | None

    def to_dict(self) -> dict:
        return {k: plain(v) for k, v in asdict(self).items()}


def plain(value):
    """JSON has no infinities or NaN: they become the strings 'inf', '-inf', 'nan'."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return list(value) if isinstance(value, tuple) else value


def _min_cosine(out: np.ndarray, ref: np.ndarray) -> float:
    """The smallest per-sample cosine similarity (rows of the batch)."""
    a, b = out.reshape(len(out), -1), ref.reshape(len(ref), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.sum(a * b, axis=1)
    cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1), np.where(np.all(a == b, axis=1), 1.0, 0.0))
    return float(cos.min())


def _snr_db(err: np.ndarray, ref: np.ndarray) -> float:
    """-inf when the error is not finite (an overflowed output)."""
    noise = float(np.sum(err ** 2))
    if not math.isfinite(noise):
        return -math.inf
    return math.inf if noise == 0 else 10 * math.log10(float(np.sum(ref ** 2)) / noise)


def sqnr_db(out: np.ndarray, ref: np.ndarray) -> float:
    """10 log10(sum ref^2 / sum (out - ref)^2), in float64: the quantization SNR of `out`."""
    o, r = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    return _snr_db(o - r, r)


def topk_agreement(out: np.ndarray, ref: np.ndarray, k: int = TOP_K) -> tuple[float | None, float | None]:
    """(top-1 agreement, mean top-k overlap) of two (N, classes) score arrays."""
    if out.ndim != 2 or out.shape[1] < 2:
        return None, None
    top1 = float(np.mean(out.argmax(1) == ref.argmax(1)))
    k = min(k, out.shape[1])
    a, b = np.argsort(-out, axis=1)[:, :k], np.argsort(-ref, axis=1)[:, :k]
    overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)])
    return top1, float(overlap)


def is_label(array: np.ndarray) -> bool:
    """An integer output holds class indices (a classifier's top label), not scores."""
    return np.issubdtype(np.asarray(array).dtype, np.integer)


def compare_labels(name: str, out: np.ndarray, ref: np.ndarray) -> OutputMetrics:
    """Label agreement of two arrays of class indices (same shape)."""
    agreement = float(np.mean(out == ref)) if out.size else 1.0
    return OutputMetrics(name=name, shape=tuple(out.shape), dtype=str(out.dtype), max_abs=None, max_rel=None,
                         mean_abs=None, cosine=None, snr_db=None, top1_agreement=agreement, top5_overlap=None,
                         nonfinite=0, ref_max_abs=None)


def compare(name: str, out: np.ndarray, ref: np.ndarray) -> OutputMetrics:
    """Metrics of `out` against `ref` (same shape), computed in float64; labels by agreement."""
    if is_label(ref):
        return compare_labels(name, out, ref)
    nonfinite = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    o, r = out.astype(np.float64), ref.astype(np.float64)
    err = np.abs(o - r)
    ref_max = float(np.max(np.abs(r))) if r.size else 0.0
    max_abs = float(np.max(err)) if err.size else 0.0
    top1, top5 = topk_agreement(o, r)
    return OutputMetrics(
        name=name, shape=tuple(out.shape), dtype=str(out.dtype),
        max_abs=max_abs, max_rel=max_abs / ref_max if ref_max > 0 else (0.0 if max_abs == 0 else math.inf),
        mean_abs=float(np.mean(err)) if err.size else 0.0,
        cosine=_min_cosine(o, r), snr_db=_snr_db(o - r, r),
        top1_agreement=top1, top5_overlap=top5, nonfinite=nonfinite, ref_max_abs=ref_max,
    )
