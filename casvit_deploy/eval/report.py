"""The result of `casvit eval`: per model (each artifact and its eager fp32 reference) top-1 and
top-5 on the labelled set; per artifact the top-1 drop against its reference with the paired
95% interval, top-1 agreement, the classes that drop most, and the gate's verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from casvit_deploy.data.labelled import LabelledSet
from casvit_deploy.numerics.accuracy import ClassDrop, PairedDrop, hits, paired_drop, worst_classes
from casvit_deploy.settings import timestamp

WORST_CLASSES = 3


@dataclass
class ModelResult:
    """One model's accuracy. `reference`, `drop`, `agreement`, `worst` and `passed` are None
    (empty) for an eager reference; `latency` is filled when latency was measured."""

    name: str
    kind: str                     # "eager" or "artifact"
    engine: str
    top1: float
    top5: float
    correct: int
    format: str = "pytorch"
    precision: str = "fp32"
    path: str | None = None
    size_bytes: int | None = None
    reference: str | None = None
    drop: PairedDrop | None = None
    agreement: float | None = None
    worst: list[ClassDrop] = field(default_factory=list)
    passed: bool | None = None
    latency: dict | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self, class_names: list[str] | None = None) -> dict:
        worst = [w.to_dict() | ({"name": class_names[w.label]} if class_names else {}) for w in self.worst]
        return {"name": self.name, "kind": self.kind, "format": self.format, "precision": self.precision,
                "path": self.path, "size_bytes": self.size_bytes, "engine": self.engine, "top1": self.top1,
                "top5": self.top5, "correct": self.correct, "reference": self.reference,
                "top1_drop": self.drop.to_dict() if self.drop else None, "agreement": self.agreement,
                "worst_classes": worst, "passed": self.passed, "latency": self.latency, "notes": self.notes}


@dataclass
class EvalReport:
    dataset: LabelledSet
    results: list[ModelResult]
    max_top1_drop: float | None
    threads: int | None
    class_names: list[str] | None = None
    seconds: float = 0.0
    created: str = field(default_factory=timestamp)
    latency_method: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[ModelResult]:
        return [r for r in self.results if r.passed is False]

    def class_name(self, label: int) -> str:
        return self.class_names[label] if self.class_names else str(label)

    def to_dict(self) -> dict:
        data = self.dataset
        return {"schema": "casvit-eval/1", "created": self.created, "seconds": round(self.seconds, 2),
                "dataset": {"source": str(data.source), "kind": data.kind, "classes": data.classes}
                | data.fingerprint.to_dict(),
                "max_top1_drop": self.max_top1_drop, "threads": self.threads, "latency_method": self.latency_method,
                "passed": not self.failed, "results": [r.to_dict(self.class_names) for r in self.results],
                "notes": self.notes}


def eager_result(name: str, engine: str, top: np.ndarray, labels: np.ndarray) -> ModelResult:
    correct = hits(top, labels, 1)
    return ModelResult(name, "eager", engine, float(correct.mean()), float(hits(top, labels, 5).mean()),
                       int(correct.sum()))


def artifact_result(subject, top: np.ndarray, reference_top: np.ndarray, labels: np.ndarray,
                    max_top1_drop: float | None) -> ModelResult:
    """`subject` (eval/subjects.py Subject) scored against `labels` and its reference's predictions."""
    correct, reference_correct = hits(top, labels, 1), hits(reference_top, labels, 1)
    drop = paired_drop(reference_correct, correct)
    passed = None if max_top1_drop is None else drop.drop_pp <= max_top1_drop
    return ModelResult(subject.name, "artifact", subject.description, float(correct.mean()),
                       float(hits(top, labels, 5).mean()), int(correct.sum()), subject.format, subject.precision,
                       str(subject.path), subject.size_bytes, subject.reference.name, drop,
                       float(np.mean(top[:, 0] == reference_top[:, 0])),
                       worst_classes(labels, reference_correct, correct, WORST_CLASSES), passed)
