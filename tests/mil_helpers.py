"""Helpers for the MIL interpreter tests: CoreML artifacts, eager block outputs, corruption."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import torch

from casvit_deploy.formats.coreml.options import CoreMLEngine, CoreMLOptions
from casvit_deploy.model import load_model
from casvit_deploy.runtime.base import RunnerOptions


def open_coreml(path: Path, engine: str = "mil-reference", threads: int | None = None):
    """An opened CoreMLRunner for `path` (not through open_runner: any suffix will do), with
    its manifest's preprocessing when it has one, as open_runner gives it."""
    from casvit_deploy.formats.coreml.runner import CoreMLRunner
    from casvit_deploy.store import manifests

    manifest = manifests.find(path)
    options = RunnerOptions(threads=threads, engine=CoreMLEngine(engine),
                            preprocessing=manifest.preprocessing if manifest else None)
    runner = CoreMLRunner(path, options)
    runner.open()
    return runner


BLOB_HEADER = struct.Struct("<IIQQ")  # sentinel, dtype, size in bytes, data offset
BLOB_SENTINEL = 0xDEADBEEF


def export_coreml(out_dir: Path, variant: str, resolution: int, precision: str, rewrite: bool = True,
                  **options) -> tuple[Path, dict]:
    """(artifact, block_outputs) of a CoreML export of the seed-0 random model. Deploy form
    goes through the project exporter; upstream form is converted here (the exporter
    refuses programs that keep batch_norm)."""
    loaded = load_model(variant=variant)
    if rewrite:
        from casvit_deploy.pipeline import export_model

        result = export_model(loaded, "coreml", out_dir, resolution=resolution, precision=precision,
                              options=CoreMLOptions(**options))
        return result.artifact, result.manifest.block_outputs
    return convert_upstream(loaded, out_dir / f"{variant}_{resolution}_{precision}_upstream.mlpackage",
                            resolution, precision)


def convert_upstream(loaded, path: Path, resolution: int, precision: str) -> tuple[Path, dict]:
    import coremltools as ct

    from casvit_deploy.export.graph import block_outputs, export_program

    model = loaded.model
    program = export_program(model, 1, resolution, False).run_decompositions({})
    mlmodel = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                         compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
                         skip_model_load=True)
    mlmodel.save(str(path))
    return path, block_outputs(program, model)


@torch.no_grad()
def eager_blocks(model: torch.nn.Module, image: np.ndarray, blocks) -> dict[str, np.ndarray]:
    """Each block's output (forward hooks; "head" = the model output) in float64."""
    model = model.double().eval()
    modules = dict(model.named_modules())
    found, hooks = {}, []
    for block in blocks:
        if block in modules and block != "head":
            hooks.append(modules[block].register_forward_hook(
                lambda m, i, o, b=block: found.__setitem__(b, o.numpy())))
    found["head"] = model(torch.from_numpy(image).double()).numpy()
    for hook in hooks:
        hook.remove()
    return found


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    got, want = np.asarray(got, np.float64).reshape(want.shape), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def corrupt_weight(package: Path, const_name: str, copy_to: Path, seed: int = 0) -> Path:
    """A copy of `package` with the weight blob of const `const_name` perturbed on disk
    (Gaussian noise of the weight's own scale added to every element)."""
    import coremltools as ct

    shutil.copytree(package, copy_to)
    spec = ct.models.MLModel(str(copy_to), skip_model_load=True).get_spec()
    offset = _blob_offset(spec, const_name)
    weights = copy_to / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    with open(weights, "r+b") as f:
        f.seek(offset)
        sentinel, dtype, size, data_offset = BLOB_HEADER.unpack(f.read(BLOB_HEADER.size))
        assert sentinel == BLOB_SENTINEL
        f.seek(data_offset)
        np_dtype = {1: np.float16, 2: np.float32}[dtype]  # MIL blob data types
        values = np.frombuffer(f.read(size), dtype=np_dtype).astype(np.float32)
        noise = np.random.default_rng(seed).standard_normal(values.shape) * (np.abs(values).max() + 1e-3)
        f.seek(data_offset)
        f.write((values + noise).astype(np_dtype).tobytes())
    return copy_to


def _blob_offset(spec, const_name: str) -> int:
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                if op.type == "const" and op.outputs[0].name == const_name:
                    return op.attributes["val"].blobFileValue.offset
    raise KeyError(const_name)
