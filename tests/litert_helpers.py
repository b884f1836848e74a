"""Running a `.tflite` file the way an app does, through ai-edge-litert's interpreter alone
(none of this project's runner code), and the independent PyTorch reference to judge it by."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.data.images import photo_batch
from casvit_deploy.settings import Resolution
from tests.reference_forward import reference_forward


def photographs(resolution: str | int) -> np.ndarray:
    """The bundled photographs, preprocessed for `resolution` (float32 NCHW)."""
    return photo_batch(Preprocessing.for_resolution(Resolution.parse(resolution)))[0]


def interpreter_outputs(path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """Each output (by its signature name) over `images`, one image per invoke: NHWC inputs
    transposed, int8 inputs quantized and int8 outputs dequantized with the file's own scale
    and zero point."""
    from ai_edge_litert.interpreter import Interpreter

    engine = Interpreter(model_path=str(path), num_threads=2)
    engine.allocate_tensors()
    signature = engine._get_full_signature_list()["serving_default"]
    entry = engine.get_input_details()[0]
    found: dict[str, list] = {name: [] for name in signature["outputs"]}
    for image in images:
        x = image[None] if entry["shape"][1] == 3 else image[None].transpose(0, 2, 3, 1)
        if entry["dtype"] == np.int8:
            scale, zero = entry["quantization"]
            x = np.clip(np.round(x / scale) + zero, -128, 127)
        engine.set_tensor(entry["index"], np.ascontiguousarray(x, dtype=entry["dtype"]))
        engine.invoke()
        for name, index in signature["outputs"].items():
            detail = next(d for d in engine.get_output_details() if d["index"] == index)
            value = engine.get_tensor(index).astype(np.float32)
            if detail["dtype"] == np.int8:
                scale, zero = detail["quantization"]
                value = (value - zero) * scale
            found[name].append(value)
    return {name: np.concatenate(values) for name, values in found.items()}


def reference_outputs(model: torch.nn.Module, images: np.ndarray, backbone: bool = False) -> dict[str, np.ndarray]:
    """tests/reference_forward.py on the model's upstream state dict: logits, or feat_s4 ... feat_s32."""
    with torch.no_grad():
        out = reference_forward(model.state_dict(), model.variant.layers, torch.from_numpy(images), fork_feat=backbone)
    if backbone:
        return {f"feat_s{s}": o.numpy() for s, o in zip((4, 8, 16, 32), out)}
    return {"logits": out.numpy()}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest per-sample cosine similarity."""
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return float(np.min(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))
