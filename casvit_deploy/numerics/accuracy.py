"""Accuracy against labels, and how two classifiers' accuracies on the same images differ.

Predictions are class scores (logits or probabilities; any monotonic map of the logits gives
the same ranks). Top-1 is `argmax` (the first index among ties, numpy's rule); top-k is a hit
when the label is among the k highest scores. A drop is reference minus candidate, in
percentage points, paired over the same images; its 95% interval is Newcombe's hybrid score
interval for paired proportions (Newcombe 1998, Stat. Med. 17:2635, method 10: the Wilson
intervals of the two accuracies, combined with their correlation, whose numerator ad - bc is
reduced by n/2 when positive), which stays sensible when few images disagree (a Wald
interval collapses to zero width there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile
TOP_K = 5


def top_classes(scores: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """(N, min(k, classes)) class indices, best first; column 0 is `argmax` (first of ties)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    order[:, 0] = scores.argmax(axis=1)  # stable descending sort already puts the first maximum first
    return order


def hits(top: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: the label is among the first `k` columns of `top`."""
    return (top[:, :k] == np.asarray(labels)[:, None]).any(axis=1)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class PairedDrop:
    """Reference minus candidate accuracy over the same `n` images, in percentage points,
    with its 95% interval; `only_reference` / `only_candidate` count the images exactly one
    of the two gets right (the discordant pairs that make the difference)."""

    n: int
    drop_pp: float
    low_pp: float
    high_pp: float
    only_reference: int
    only_candidate: int

    def to_dict(self) -> dict:
        return {"n": self.n, "drop_pp": self.drop_pp, "ci95_pp": [self.low_pp, self.high_pp],
                "only_reference": self.only_reference, "only_candidate": self.only_candidate}


def paired_drop(reference: np.ndarray, candidate: np.ndarray, z: float = Z95) -> PairedDrop:
    """Newcombe's interval (method 10) for p_ref - p_cand from per-image correctness (bool arrays)."""
    reference, candidate = np.asarray(reference, bool), np.asarray(candidate, bool)
    n = len(reference)
    a = int(np.sum(reference & candidate))
    b = int(np.sum(reference & ~candidate))
    c = int(np.sum(~reference & candidate))
    d = n - a - b - c
    if n == 0:
        return PairedDrop(0, 0.0, -100.0, 100.0, 0, 0)
    p1, p2 = (a + b) / n, (a + c) / n
    (l1, u1), (l2, u2) = wilson(a + b, n, z), wilson(a + c, n, z)
    phi = _correlation(a, b, c, d)
    low = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    theta = (b - c) / n  # = p1 - p2, without the rounding of a subtraction (a drop of exactly X stays X)
    return PairedDrop(n, 100 * (b - c) / n, 100 * max(-1.0, theta - low), 100 * min(1.0, theta + high), b, c)


def _correlation(a: int, b: int, c: int, d: int) -> float:
    """Newcombe's corrected phi of the paired table (a: both right, b, c: one right, d: neither)."""
    product = (a + b) * (c + d) * (a + c) * (b + d)
    if product == 0:
        return 0.0
    cross, half = a * d - b * c, (a + b + c + d) / 2
    numerator = cross - half if cross > half else (0.0 if cross >= 0 else cross)
    return numerator / math.sqrt(product)


@dataclass(frozen=True)
class ClassDrop:
    """One class's accuracy for the reference and the candidate, over its `n` images."""

    label: int
    n: int
    reference: float
    candidate: float

    @property
    def drop_pp(self) -> float:
        return 100 * (self.reference - self.candidate)

    def to_dict(self) -> dict:
        return {"label": self.label, "n": self.n, "reference_top1": self.reference,
                "candidate_top1": self.candidate, "drop_pp": self.drop_pp}


def worst_classes(labels: np.ndarray, reference: np.ndarray, candidate: np.ndarray, count: int = 3) -> list[ClassDrop]:
    """The `count` classes whose top-1 drops most (only those that drop), worst first."""
    labels = np.asarray(labels)
    drops = []
    for label in np.unique(labels):
        members = labels == label
        drop = ClassDrop(int(label), int(members.sum()), float(reference[members].mean()),
                         float(candidate[members].mean()))
        if drop.drop_pp > 0:
            drops.append(drop)
    return sorted(drops, key=lambda d: (-d.drop_pp, d.label))[:count]
