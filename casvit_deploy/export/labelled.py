"""The labelled images a search's top-1 budget is measured on (`--data`, with
`--max-top1-drop`): read as `casvit eval` reads them, preprocessed as the artifact's input,
held in memory (every trial runs them), and identified in the manifest by their fingerprint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from casvit_deploy.data.batches import run_in_batches
from casvit_deploy.data.labelled import read_labelled
from casvit_deploy.errors import UsageError
from casvit_deploy.export.base import ExportJob
from casvit_deploy.quantize.search import Labelled

MAX_LABELLED = 5000  # labelled images held in memory and run by every trial of a search
RUN_BATCH = 64


@dataclass(frozen=True)
class LabelledImages:
    """A search's labelled images, preprocessed, and what identifies them in the manifest."""

    images: np.ndarray
    labels: np.ndarray
    record: dict  # source, kind, files, sha256 of the sorted path/label list, classes

    def judge(self, logits: np.ndarray, reference_logits: np.ndarray) -> Labelled:
        """Top-1 of `logits` (or probabilities) on these images, against the fp32 model's."""
        return Labelled.of(logits, reference_logits, self.labels)


def labelled_images(job: ExportJob, data: Path) -> LabelledImages:
    """The labelled set at `data`, read (data/labelled.py) and preprocessed as the artifact's input."""
    job.progress("labelled data")
    found = read_labelled(data, job.num_classes)
    if len(found) > MAX_LABELLED:
        raise UsageError(f"--data {data} holds {len(found)} images; the search runs them in every trial and holds "
                         f"them in memory: give at most {MAX_LABELLED} (a class-balanced subset)")
    images = np.concatenate(list(found.batches(job.preprocessing)))
    record = {"source": str(found.source.resolve()), "kind": found.kind, "classes": found.classes,
              **found.fingerprint.to_dict()}
    return LabelledImages(images, np.asarray(found.labels), record)


def scores(run: Callable[[np.ndarray], dict], images: np.ndarray, batch: int | None = RUN_BATCH) -> np.ndarray:
    """What `run` (a runner's) scores `images` with, in batches of `batch`: a classifier
    package's "probabilities", else "logits" (the same top-1)."""
    outputs = run_in_batches(run, images, batch)
    return outputs["probabilities"] if "probabilities" in outputs else outputs["logits"]
