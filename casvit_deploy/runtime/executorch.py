"""ExecuTorch as a Runner: a `.pte` program loaded with `executorch.runtime`."""

from __future__ import annotations

import numpy as np

from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.runtime.base import Runner

UNNAMED = ("logits",)  # without names from the options or a manifest: logits, output_1, ...


class ExecuTorchRunner(Runner):
    """The `forward` method of a `.pte` file. A program stores no output names: they come
    from the options, else the manifest, else "logits" (then output_1, ...).

    The program is handed C-contiguous float32 memory: ExecuTorch's Python runtime reads a
    non-contiguous tensor as if it were contiguous and silently returns wrong results."""

    def open(self) -> None:
        from importlib.metadata import version

        from executorch.runtime import Runtime

        from casvit_deploy.quiet import native_stderr_silenced

        with native_stderr_silenced():  # the runtime logs CPU probing to stderr on first load
            self.program = Runtime.get().load_program(self.path)
            self.method = self.program.load_method("forward")
        manifest = None if self.options.output_names else Manifest.find(self.path)
        self.output_names = tuple(self.options.output_names or (manifest.output_names if manifest else UNNAMED))
        self.description = f"executorch {version('executorch')} runtime (CPU)"

    def close(self) -> None:
        self.method = self.program = None

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        outputs = self.method.execute([tensor])
        names = list(self.output_names) + [f"output_{i}" for i in range(len(self.output_names), len(outputs))]
        return {name: out.detach().numpy().copy() for name, out in zip(names, outputs)}
