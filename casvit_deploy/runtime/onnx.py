"""ONNX Runtime as a Runner, with access to internal tensors by value name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _session(model_bytes: bytes | str, providers: Sequence[str] | None, threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=list(providers or ["CPUExecutionProvider"]))


class OnnxRunner:
    """An `.onnx` file in onnxruntime; `providers` in preference order (default CPU)."""

    format = "onnx"

    def __init__(self, path: Path, providers: Sequence[str] | None = None, threads: int | None = None):
        import onnxruntime as ort

        self.path, self.providers, self.threads = Path(path), providers, threads
        self.session = _session(str(self.path), providers, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.engine = f"onnxruntime {ort.__version__} ({self.session.get_providers()[0]})"
        self._probes: dict[tuple[str, ...], object] = {}

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        feed = {self.input_name: np.ascontiguousarray(image, dtype=np.float32)}
        return dict(zip(self.output_names, self.session.run(self.output_names, feed)))

    def value_names(self) -> set[str]:
        """Every tensor name produced inside the graph."""
        import onnx

        graph = onnx.load(str(self.path), load_external_data=False).graph
        return {o for node in graph.node for o in node.output if o}

    def _probe(self, names: tuple[str, ...]):
        """A session on an in-memory copy of the graph that also outputs `names`."""
        import onnx

        model = onnx.shape_inference.infer_shapes(onnx.load(str(self.path)))
        known = {v.name: v for v in list(model.graph.value_info) + list(model.graph.output)}
        missing = set(names) - self.value_names()
        if missing:
            from casvit_deploy.errors import UsageError

            raise UsageError(f"{self.path.name} has no tensor(s) named {', '.join(sorted(missing))}")
        present = {o.name for o in model.graph.output}
        for name in names:
            if name not in present:
                model.graph.output.append(known.get(name) or onnx.ValueInfoProto(name=name))
        return _session(model.SerializeToString(), self.providers, self.threads)

    def run_intermediates(self, image: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Internal tensors by value name (e.g. the FX names in a manifest's block_outputs)."""
        key = tuple(names)
        if key not in self._probes:
            self._probes[key] = self._probe(key)
        feed = {self.input_name: np.ascontiguousarray(image, dtype=np.float32)}
        return dict(zip(key, self._probes[key].run(list(key), feed)))
