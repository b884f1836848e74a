"""Parity inputs: seeded random batches and real photographs preprocessed as the manifest
records (the reference evaluation transform, artifacts/preprocessing.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.data.images import (  # noqa: F401  (preprocess: re-exported)
    GATE_RANDOM_SAMPLES, photo_batch, preprocess, seeded_noise)
from casvit_deploy.errors import UsageError
from casvit_deploy.settings import InputKind, Resolution, choice

MAX_SAMPLES = 1024


@dataclass
class InputSet:
    """A named batch (N, 3, H, W) float32 and where each sample came from."""

    name: str
    images: np.ndarray
    sources: list[str] = field(default_factory=list)


def random_set(resolution: Resolution | int | str, samples: int, seed: int = 0) -> InputSet:
    """`samples` seeded standard-normal images (the scale of normalized photographs)."""
    images = seeded_noise(resolution, samples, seed)
    return InputSet("random", images, [f"normal(seed={seed})[{i}]" for i in range(samples)])


def image_set(pre: Preprocessing, directory: Path | None = None, samples: int | None = None) -> InputSet:
    """Photographs from `directory`, or scikit-image's bundled ones, preprocessed by `pre`."""
    images, sources = photo_batch(pre, directory, samples)
    return InputSet("images", images, sources)


def check_samples(samples: int | None) -> None:
    """UsageError unless `samples` (None: the default) is from 1 to MAX_SAMPLES."""
    if samples is not None and not 1 <= samples <= MAX_SAMPLES:
        raise UsageError(f"--samples {samples}: must be from 1 to {MAX_SAMPLES}")


def build_input_sets(kind: InputKind | str, resolution: Resolution | int | str, samples: int | None = None,
                     images_dir: Path | None = None, seed: int = 0,
                     preprocessing: Preprocessing | None = None) -> list[InputSet]:
    """The input sets for `kind`; photographs preprocessed by `preprocessing` (default: the
    reference transform at `resolution`)."""
    kind = choice(InputKind, kind, "--inputs")
    check_samples(samples)
    sets = []
    if kind in (InputKind.RANDOM, InputKind.BOTH):
        sets.append(random_set(resolution, samples or GATE_RANDOM_SAMPLES, seed))
    if kind in (InputKind.IMAGES, InputKind.BOTH):
        sets.append(image_set(preprocessing or Preprocessing.for_resolution(resolution), images_dir, samples))
    return sets
