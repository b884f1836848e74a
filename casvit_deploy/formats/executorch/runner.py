"""ExecuTorch as a Runner: a `.pte` program loaded with `executorch.runtime`."""

from __future__ import annotations

import numpy as np

from casvit_deploy.artifacts.records import Signature, TensorSpec
from casvit_deploy.runtime.base import Runner
from casvit_deploy.settings import INPUT_NAME

UNNAMED = ("logits",)  # without names from the options or a manifest: logits, output_1, ...
# ExecuTorch ScalarType codes -> numpy dtype names (the types a program's interface can have)
SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                7: "float64", 11: "bool", 15: "bfloat16"}


def output_names(count: int, known: tuple[str, ...] = UNNAMED) -> list[str]:
    """A program's outputs are unnamed: the `known` names, then output_k, output_k+1, ..."""
    return list(known[:count]) + [f"output_{i}" for i in range(len(known), count)]


class ExecuTorchRunner(Runner):
    """The `forward` method of a `.pte` file. A program stores no output names: they come
    from the options (`open_runner` takes them from the manifest), else "logits" (then
    output_1, ...).

    The program is handed C-contiguous float32 memory: ExecuTorch's Python runtime reads a
    non-contiguous tensor as if it were contiguous and silently returns wrong results."""

    def open(self) -> None:
        from importlib.metadata import version

        from executorch.runtime import Runtime

        from casvit_deploy.quiet import native_stderr_silenced

        with native_stderr_silenced():  # the runtime logs CPU probing to stderr on first load
            self.program = Runtime.get().load_program(self.path)
            self.method = self.program.load_method("forward")
        self.output_names = tuple(self.options.output_names or UNNAMED)
        self.description = f"executorch {version('executorch')} runtime (CPU)"

    def close(self) -> None:
        self.method = self.program = None

    def signature(self) -> Signature:
        """Sizes and dtypes from the `forward` method's metadata (a free batch reads as its
        upper bound); names by the exporter's convention, since a program stores none."""
        meta = self.program.metadata("forward")

        def spec(name, info) -> TensorSpec:
            dtype = int(info.dtype())
            return TensorSpec(name, tuple(info.sizes()), SCALAR_TYPES.get(dtype, f"scalar type {dtype}"))

        outputs = [meta.output_tensor_meta(i) for i in range(meta.num_outputs())]
        inputs = [meta.input_tensor_meta(i) for i in range(meta.num_inputs())]
        names = [INPUT_NAME] + [f"input_{i}" for i in range(1, len(inputs))]
        return Signature(tuple(map(spec, names, inputs)), tuple(map(spec, output_names(len(outputs), self.output_names), outputs)))

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        outputs = self.method.execute([tensor])
        return {name: out.detach().numpy().copy()
                for name, out in zip(output_names(len(outputs), self.output_names), outputs)}
