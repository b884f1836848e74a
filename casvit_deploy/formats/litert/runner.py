"""The `.tflite` runner: ai-edge-litert's interpreter, XNNPACK on (its default), an explicit
thread count (default: every core this process may use, as the other runtimes' defaults).

It takes what every runner takes, a float32 NCHW batch, and returns float32 outputs by
name: an NHWC input is transposed to, an int8 input quantized with the file's own scale and
zero point, an int8 output dequantized (what an app does, see `Port`). Block outputs come
from a second interpreter that keeps every intermediate tensor
(`experimental_preserve_all_tensors`); the export names each block's tensor after the
manifest's `block_outputs` (blocks.py), and tensors inside the file are NHWC.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from casvit_deploy.artifacts.records import Signature, TensorSpec
from casvit_deploy.model.blocks import FINAL_OUTPUT
from casvit_deploy.runtime.base import Runner


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class Port:
    """One input or output of the file: its tensor, and for int8 its scale and zero point
    (real value = (q - zero_point) * scale)."""

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.dtype in ("int8", "uint8") and self.scale > 0

    @property
    def nhwc(self) -> bool:
        """A 4-d image input whose last dimension holds the 3 colour channels."""
        return len(self.shape) == 4 and self.shape[3] == 3 and self.shape[1] != 3

    def quantize(self, x: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return np.ascontiguousarray(x, dtype=self.dtype)
        info = np.iinfo(self.dtype)
        q = np.clip(np.round(x / self.scale) + self.zero_point, info.min, info.max)
        return np.ascontiguousarray(q, dtype=self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return np.asarray(q, dtype=np.float32)
        return ((q.astype(np.float32) - self.zero_point) * self.scale).astype(np.float32)

    def record(self) -> dict:
        return {"dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point}


def _port(detail: dict, name: str) -> Port:
    scale, zero_point = detail.get("quantization") or (0.0, 0)
    return Port(name, int(detail["index"]), tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name,
                float(scale), int(zero_point))


def ports(interpreter) -> tuple[list[Port], list[Port]]:
    """Inputs and outputs in the file's order, named by its signature (else by tensor name)."""
    signatures = interpreter._get_full_signature_list() or {}  # private, but the names only live there
    first = next(iter(signatures.values()), {"inputs": {}, "outputs": {}})
    named = {index: name for side in ("inputs", "outputs") for name, index in first[side].items()}
    return ([_port(d, named.get(d["index"], d["name"])) for d in interpreter.get_input_details()],
            [_port(d, named.get(d["index"], d["name"])) for d in interpreter.get_output_details()])


def interpreter(path: Path, threads: int, preserve_all_tensors: bool = False):
    """An allocated interpreter on `path` (XNNPACK applied, as by default)."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    from casvit_deploy.quiet import native_stderr_silenced

    with native_stderr_silenced(), warnings.catch_warnings():  # the delegate's INFO line; preserving is for debugging
        warnings.simplefilter("ignore", UserWarning)
        made = Interpreter(model_path=str(path), num_threads=threads,
                           experimental_preserve_all_tensors=preserve_all_tensors)
        made.allocate_tensors()
    return made


class LiteRTRunner(Runner):
    """A `.tflite` file in ai-edge-litert's interpreter (CPU, XNNPACK)."""

    supports_intermediates = True

    def open(self) -> None:
        from importlib.metadata import version

        self.threads = self.options.threads or default_threads()
        self.interpreter = interpreter(self.path, self.threads)
        self.inputs, self.outputs = ports(self.interpreter)
        self._probe = None
        self.description = f"ai-edge-litert {version('ai-edge-litert')} interpreter (XNNPACK, {self.threads} threads)"

    def close(self) -> None:
        self.interpreter = self._probe = None

    def signature(self) -> Signature:
        def spec(port: Port) -> TensorSpec:
            return TensorSpec(port.name, port.shape, port.dtype)

        return Signature(tuple(map(spec, self.inputs)), tuple(map(spec, self.outputs)))

    def _invoke(self, engine, image: np.ndarray) -> None:
        port = self.inputs[0]
        x = np.asarray(image, dtype=np.float32)
        engine.set_tensor(port.index, port.quantize(x.transpose(0, 2, 3, 1) if port.nhwc else x))
        engine.invoke()

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        self._invoke(self.interpreter, image)
        return {port.name: port.dequantize(self.interpreter.get_tensor(port.index)) for port in self.outputs}

    def block_tensors(self, block_outputs: dict[str, str]) -> dict[str, str | None]:
        """The tensor named after each block's FX node; an output block (the head, a
        backbone's output norms) is its output."""
        names = {d["name"] for d in self.interpreter.get_tensor_details()}
        outputs = [p.name for p in self.outputs]
        found = {block: fx if fx in names else None for block, fx in block_outputs.items()}
        if found.get(FINAL_OUTPUT, "") is None and len(outputs) == 1:
            found[FINAL_OUTPUT] = outputs[0]
        return found

    def run_intermediates(self, image: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """Tensors by name, float32, NCHW (the file's outputs as `run` gives them)."""
        if self._probe is None:
            self._probe = interpreter(self.path, self.threads, preserve_all_tensors=True)
        self._invoke(self._probe, image)
        details = {d["name"]: d for d in self._probe.get_tensor_details()}
        outputs = {p.name: p for p in self.outputs}
        found = {}
        for name in names:
            port = outputs.get(name) or _port(details[name], name)
            value = port.dequantize(self._probe.get_tensor(port.index))
            found[name] = value if name in outputs or value.ndim != 4 else value.transpose(0, 3, 1, 2)
        return found
