"""Helpers for parity tests: export small artifacts, corrupt one stored weight on disk."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np

from casvit_deploy.formats.executorch.weight_audit import deployed_model
from casvit_deploy.store import manifests
from casvit_deploy.store.manifests import manifest_path


def copy_artifact(artifact: Path, folder: Path) -> Path:
    """A copy of `artifact` and its manifest in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / artifact.name
    (shutil.copytree if artifact.is_dir() else shutil.copy)(artifact, target)
    shutil.copy(manifest_path(artifact), manifest_path(target))
    return target


def reference_weight(loaded, artifact: Path, name: str) -> np.ndarray:
    """The deploy-form weight `name` exactly as the exporter saw it."""
    return dict(deployed_model(loaded, manifests.load(artifact)).named_parameters())[name].detach().numpy()


def perturb_float(file: Path, array: np.ndarray, index: int, delta: float) -> None:
    """Add `delta` to element `index` of the float32 copy of `array` stored in `file`."""
    data = bytearray(file.read_bytes())
    raw = np.ascontiguousarray(array, dtype=np.float32).tobytes()
    at = data.find(raw)
    assert at >= 0, f"weight not found in {file}"
    assert data.find(raw, at + 1) < 0, f"weight stored twice in {file}"
    value = struct.unpack_from("<f", data, at + 4 * index)[0]
    struct.pack_into("<f", data, at + 4 * index, value + delta)
    file.write_bytes(bytes(data))
