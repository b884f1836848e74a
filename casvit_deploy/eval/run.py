"""`evaluate`: artifacts and their eager fp32 references on one labelled set, image batch by
image batch, each image read once per preprocessing; then scored, optionally timed, and
recorded in each artifact's manifest."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from casvit_deploy.data.labelled import LabelledSet, read_labelled
from casvit_deploy.errors import UsageError
from casvit_deploy.eval.report import EvalReport, artifact_result, eager_result
from casvit_deploy.eval.subjects import Group, Subjects

MAX_THREADS = 1024
CHUNK = 64             # images read and preprocessed at a time
PROGRESS_STEPS = 20    # progress lines per group at most (one per 5%)


@dataclass(frozen=True)
class EvalRequest:
    """One `casvit eval` run. `labels`: a labels file or "imagenet" (class names for folder
    names or list labels); `max_top1_drop`: the gate in percentage points (None: none);
    `latency`: also time each model briefly (eval/latency.py); `record`: write the results
    into the manifests."""

    artifacts: tuple[Path, ...]
    data: Path
    checkpoint: Path | None = None
    labels: Path | str | None = None
    max_top1_drop: float | None = None
    threads: int | None = None
    latency: bool = False
    record: bool = True

    def __post_init__(self):
        if not self.artifacts:
            raise UsageError("give at least one ARTIFACT to evaluate")
        if self.max_top1_drop is not None and not 0 <= self.max_top1_drop <= 100:  # NaN fails too
            raise UsageError(f"--max-top1-drop {self.max_top1_drop}: a number of percentage points from 0 to 100")
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise UsageError(f"--threads {self.threads}: must be from 1 to {MAX_THREADS}")


def _class_names(labels: Path | str | None, num_classes: int) -> list[str] | None:
    if labels is None:
        return None
    from casvit_deploy.formats.coreml.labels import read_labels

    return read_labels(labels, num_classes)


def _thread_settings(threads: int, artifacts: tuple[Path, ...]):
    """`threads` for torch and for each runtime with process-wide settings (ExecuTorch's pool),
    as `casvit bench` sets them. Entered before any artifact is opened and left after all are
    closed: resizing ExecuTorch's pool under a loaded program crashes the process."""
    from casvit_deploy.bench.process import process_settings
    from casvit_deploy.errors import CasvitError
    from casvit_deploy.formats import format_for_path

    formats = {}
    for artifact in artifacts:
        try:
            fmt = format_for_path(artifact)
        except CasvitError:  # refused with its own message when the artifacts are opened
            continue
        formats[fmt.name] = fmt
    return process_settings(threads, [target for fmt in formats.values() for target in fmt.bench[:1]])


def _predict(group: Group, labelled: LabelledSet, progress: Callable[[str], None], where: str) -> None:
    """Every predictor of `group` on every image, preprocessed once per batch."""
    done, step = 0, max(CHUNK, len(labelled) // PROGRESS_STEPS)
    next_line = step
    for images in labelled.batches(group.preprocessing, CHUNK):
        for predictor in group.predictors:
            predictor.add(images)
        done += len(images)
        if done >= next_line or done == len(labelled):
            progress(f"{where}: {done} of {len(labelled)} images")
            next_line += step


def _results(subjects: Subjects, labels: np.ndarray, max_top1_drop: float | None) -> list:
    results = []
    for group in subjects.groups.values():
        for reference in group.references:
            results.append(eager_result(reference.name, reference.description, reference.top, labels))
            for subject in (s for s in group.subjects if s.reference is reference):
                results.append(artifact_result(subject, subject.top, reference.top, labels, max_top1_drop))
    return results


def evaluate(request: EvalRequest, progress: Callable[[str], None] = lambda text: None) -> EvalReport:
    """Accuracy of every artifact and of its eager fp32 reference on `request.data`.

    UsageError (nothing measured, nothing recorded) for a bad set: empty, an unknown class
    name, a label the head cannot have, an unreadable image (refused, naming it: the set that
    is measured is always the whole set its fingerprint names); an artifact that is not a
    classifier or that does not load; a reference checkpoint that is not the one exported."""
    from casvit_deploy.bench.process import usable_cores
    from casvit_deploy.eval.latency import measure_latency
    from casvit_deploy.eval.record import record_results

    started, threads = time.perf_counter(), request.threads or usable_cores()
    with ExitStack() as stack:
        stack.enter_context(_thread_settings(threads, request.artifacts))
        subjects = Subjects(list(request.artifacts), request.checkpoint, threads, stack, progress)
        names = _class_names(request.labels, subjects.num_classes)
        labelled = read_labelled(request.data, subjects.num_classes, names)
        progress(f"data: {labelled.describe()}")
        labels = np.asarray(labelled.labels)
        for index, group in enumerate(subjects.groups.values(), 1):
            where = f"eval at {group.preprocessing.crop}" + (f" ({index} of {len(subjects.groups)})"
                                                              if len(subjects.groups) > 1 else "")
            _predict(group, labelled, progress, where)
        report = EvalReport(labelled, _results(subjects, labels, request.max_top1_drop), request.max_top1_drop,
                            threads, names)
        if request.latency:
            report.latency_method = measure_latency(subjects, report, progress)
    if request.record:
        record_results(report, subjects)
    report.seconds = time.perf_counter() - started
    return report
