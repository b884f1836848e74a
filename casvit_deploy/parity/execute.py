"""Running a runner over a whole input set, in the batch size the artifact accepts."""

from __future__ import annotations

import numpy as np

from casvit_deploy.errors import CasvitError, UsageError, first_line


def run_all(runner, images: np.ndarray, batch: int | None) -> dict[str, np.ndarray]:
    """Outputs for every image. With a fixed `batch`, the last chunk is padded by repeating
    its final image and the padding is dropped; `batch=None` sends everything at once."""
    if not batch:
        return _run(runner, images)
    chunks = []
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        real = len(chunk)
        if real < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - real, axis=0)])
        chunks.append({k: v[:real] for k, v in _run(runner, chunk).items()})
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _run(runner, images: np.ndarray) -> dict[str, np.ndarray]:
    try:
        outputs = runner.run(np.ascontiguousarray(images, dtype=np.float32))
    except CasvitError:
        raise
    except Exception as err:  # a corrupt or mismatched artifact fails inside its runtime
        raise UsageError(f"{runner.description} could not run the artifact on input {list(images.shape)}: "
                         f"{first_line(err)}") from None
    return {k: np.asarray(v) for k, v in outputs.items()}
