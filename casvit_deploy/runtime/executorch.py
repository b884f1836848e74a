"""ExecuTorch as a Runner: a `.pte` program loaded with `executorch.runtime`."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class ExecuTorchRunner:
    """The `forward` method of a `.pte` file; outputs named "logits" (then output_1, ...)."""

    format = "executorch"

    def __init__(self, path: Path):
        from importlib.metadata import version

        from executorch.runtime import Runtime

        from casvit_deploy.quiet import native_stderr_silenced

        self.path = Path(path)
        with native_stderr_silenced():  # the runtime logs CPU probing to stderr on first load
            program = Runtime.get().load_program(self.path)
            self.method = program.load_method("forward")
        self.engine = f"executorch {version('executorch')} runtime (CPU)"

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        outputs = self.method.execute([tensor])
        names = ["logits"] + [f"output_{i}" for i in range(1, len(outputs))]
        return {name: out.detach().numpy().copy() for name, out in zip(names, outputs)}
