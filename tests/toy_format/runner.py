"""The toy format's runner: the saved program loaded back with `torch.export.load`."""

from __future__ import annotations

import numpy as np

from casvit_deploy.artifacts.records import Signature, TensorSpec
from casvit_deploy.runtime.base import Runner
from casvit_deploy.settings import INPUT_NAME


class ToyRunner(Runner):
    def open(self) -> None:
        import torch

        self.program = torch.export.load(self.path)
        self.module = self.program.module()
        self.names = self.options.output_names or ("logits",)
        self.description = f"torch {torch.__version__} (toy format)"

    def close(self) -> None:
        self.program = self.module = None

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.no_grad():
            outputs = self.module(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)))
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        return {name: out.numpy() for name, out in zip(self.names, outputs)}

    def signature(self) -> Signature:
        def spec(name: str, node) -> TensorSpec:
            value = node.meta["val"]
            return TensorSpec(name, tuple(value.shape), str(value.dtype).removeprefix("torch."))

        graph = self.program.graph
        inputs = [n for n in graph.nodes if n.op == "placeholder" and n.name in self.program.graph_signature.user_inputs]
        outputs = list(next(n for n in graph.nodes if n.op == "output").args[0])
        return Signature(tuple(spec(INPUT_NAME, n) for n in inputs), tuple(map(spec, self.names, outputs)))
