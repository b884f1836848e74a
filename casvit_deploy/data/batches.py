"""Feeding an image set to a model or artifact whose batch size may be fixed."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


def chunks(images: np.ndarray, batch: int | None) -> Iterator[np.ndarray]:
    """`images` in C-contiguous batches of exactly `batch` (the last one padded by
    repeating its final image), or all at once when `batch` is None (any batch size)."""
    if not batch:
        yield np.ascontiguousarray(images)
        return
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        if len(chunk) < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
        yield np.ascontiguousarray(chunk)


def run_in_batches(run: Callable[[np.ndarray], dict], images: np.ndarray,
                   batch: int | None) -> dict[str, np.ndarray]:
    """`run` (batch -> outputs by name) over all `images`, the padding dropped."""
    parts: dict[str, list] = {}
    for chunk in chunks(images, batch):
        for name, value in run(chunk).items():
            parts.setdefault(name, []).append(np.asarray(value))
    return {name: np.concatenate(values)[:len(images)] for name, values in parts.items()}
