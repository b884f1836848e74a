"""Calibration sets for post-training quantization: the user's images, or by default the
photographs bundled with scikit-image plus seeded noise. Real images from the target
domain calibrate better than either; the default only makes an int8 export possible
without any data.

A set is identified by the sha256 of its preprocessed float32 tensor, so a manifest can
say exactly which data chose the activation ranges.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from casvit_deploy.data.images import photo_batch, seeded_noise
from casvit_deploy.errors import UsageError

DEFAULT_SAMPLES = 32
NOISE_SEED = 0
MAX_SAMPLES = 100_000
TARGET_DOMAIN_NOTE = "real images from the target domain calibrate better (--calibration DIR)"


@dataclass(frozen=True)
class CalibrationSet:
    """`images` (N, 3, R, R) float32, preprocessed; the first `photos` are photographs."""

    images: np.ndarray
    sources: tuple[str, ...]
    photos: int
    description: str

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256(str(self.images.shape).encode())
        digest.update(np.ascontiguousarray(self.images, dtype=np.float32).tobytes())
        return digest.hexdigest()

    @property
    def photographs(self) -> np.ndarray:
        return self.images[:self.photos]

    def __len__(self) -> int:
        return len(self.images)


def check_samples(samples: int | None) -> None:
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int)
                                or not 1 <= samples <= MAX_SAMPLES):
        raise UsageError(f"--calibration-samples {samples!r}: must be from 1 to {MAX_SAMPLES}")


def calibration_set(pre, directory: Path | None = None, samples: int | None = None) -> CalibrationSet:
    """The images of `directory` (the first `samples`, sorted by name; default all), or
    without one `samples` (default 32) images: half the bundled photographs (up to all of
    them), the rest seeded standard-normal noise. Preprocessed by `pre` (a Preprocessing)."""
    check_samples(samples)
    if directory is not None:
        images, sources = photo_batch(pre, directory, samples, option="--calibration")
        return CalibrationSet(images, tuple(sources), len(images), f"{len(images)} images from {directory}")
    total = samples or DEFAULT_SAMPLES
    photos, sources = photo_batch(pre, samples=(total + 1) // 2)
    noise = seeded_noise(pre.crop, total - len(photos), NOISE_SEED)
    description = (f"{len(photos)} scikit-image photographs + {len(noise)} seeded normal-noise images "
                   f"(seed {NOISE_SEED}); {TARGET_DOMAIN_NOTE}")
    sources += [f"normal(seed={NOISE_SEED})[{i}]" for i in range(len(noise))]
    return CalibrationSet(np.concatenate([photos, noise]), tuple(sources), len(photos), description)
