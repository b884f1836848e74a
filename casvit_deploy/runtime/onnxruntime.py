"""ONNX Runtime as an engine, shared by the formats it runs (`.onnx` and `.ort` files):
one session per artifact with an explicit thread count, on the CPU provider or, on CUDA,
TensorRT then CUDA where this onnxruntime has them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from casvit_deploy.runtime.base import Runner
from casvit_deploy.settings import Device

PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def providers_for(device: Device) -> list[str]:
    """The CPU provider; on CUDA the accelerated providers this onnxruntime has, then CPU."""
    if device is not Device.CUDA:
        return ["CPUExecutionProvider"]
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    return [p for p in PROVIDER_PREFERENCE if p in available]


def session(model: bytes | str, providers: Sequence[str], threads: int | None):
    """An InferenceSession on `model` (a path or serialized bytes); `threads` intra-op
    threads (None: ONNX Runtime's default) and one inter-op thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=list(providers))


class OnnxRuntimeRunner(Runner):
    """An artifact run by ONNX Runtime: the session's first input takes the image."""

    @property
    def providers(self) -> list[str]:
        return providers_for(self.options.device)

    def open(self) -> None:
        import onnxruntime as ort

        self.session = session(str(self.path), self.providers, self.options.threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.description = f"onnxruntime {ort.__version__} ({self.session.get_providers()[0]})"

    def close(self) -> None:
        self.session = None

    def feed(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return {self.input_name: np.ascontiguousarray(image, dtype=np.float32)}

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, self.feed(image))))
