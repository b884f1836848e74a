"""The Runner contract: every format is opened in exactly one place, its runner module.

A runner takes a float32 NCHW batch (already preprocessed) and returns the model's
outputs by name. `engine` names what produced the numbers, e.g.
"onnxruntime 1.32.0 (CPUExecutionProvider)" or "MIL reference interpreter (emulation)".
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Runner(Protocol):
    format: str
    engine: str

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs by name (the classifier's is "logits") for one float32 NCHW batch."""
        ...
