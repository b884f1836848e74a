"""What an export records: the manifest of a finished artifact, and the string metadata
embedded inside the artifact itself (ONNX metadata props, CoreML user metadata)."""

from __future__ import annotations

import dataclasses
import os
from importlib import metadata
from pathlib import Path

from casvit_deploy.artifacts.files import artifact_sha256, artifact_size
from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.artifacts.records import CheckpointRecord
from casvit_deploy.export.base import ExportJob, FormatOutput
from casvit_deploy.formats import FORMATS
from casvit_deploy.model.blocks import model_outputs
from casvit_deploy.model.loading import LoadedModel
from casvit_deploy.settings import Form, Resolution, timestamp


def tools() -> tuple[str, ...]:
    """The distributions that shape an artifact: torch, every format's packages, and this one."""
    packages = (p.pip for f in FORMATS.values() for p in f.export_packages + f.run_packages)
    return tuple(dict.fromkeys(("torch", *packages, "casvit-deploy")))


def tool_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape an artifact (None when absent)."""
    found = {}
    for name in tools():
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def embedded_metadata(loaded: LoadedModel, job_resolution: Resolution, preprocessing,
                      passes: list[str]) -> dict[str, str]:
    """String metadata embedded inside the artifact itself ("resolution": "224" or "512x768",
    height x width; a backbone's outputs with their strides)."""
    tools = {f"version_{k}": str(v) for k, v in tool_versions().items() if v}
    outputs = {"outputs": ",".join(f"{o.name}:stride{o.stride}" for o in model_outputs(loaded.model))
               } if loaded.is_backbone else {}
    return {"variant": loaded.variant, "resolution": str(job_resolution), "weights": loaded.weights,
            "checkpoint_sha256": loaded.checkpoint_sha256 or "", "num_classes": str(loaded.num_classes), **outputs,
            "mean": ",".join(map(str, preprocessing.mean)), "std": ",".join(map(str, preprocessing.std)),
            "passes": ",".join(passes), **tools}


def checkpoint_record(loaded: LoadedModel, manifest_dir: Path) -> CheckpointRecord | None:
    """How a manifest in `manifest_dir` records the loaded model's checkpoint."""
    info = loaded.checkpoint
    if info is None:
        return None
    path = os.path.relpath(Path(info.path).resolve(), Path(manifest_dir).resolve())
    return CheckpointRecord(path, info.sha256, info.used_ema)


def build_manifest(loaded: LoadedModel, job: ExportJob, output: FormatOutput, staged: Path,
                   final: Path, form: Form, passes: list[str], blocks: dict[str, str], seconds: float) -> Manifest:
    """Every fact about one finished artifact, staged at `staged`, published as `final`."""
    return Manifest(
        format=job.format.name, file=final.name, size_bytes=artifact_size(staged), sha256=artifact_sha256(staged),
        inputs=output.inputs, outputs=output.outputs, preprocessing=output.preprocessing or job.preprocessing,
        variant=loaded.variant, num_classes=loaded.num_classes,
        distillation=getattr(loaded.model, "dist_head", None) is not None,
        weights=loaded.weights, checkpoint=checkpoint_record(loaded, final.parent),
        seed=None if loaded.checkpoint else loaded.seed, form=form, passes=passes, precision=job.precision,
        resolution=job.resolution, batch=job.batch, dynamic_batch=job.dynamic_batch, options=job.options,
        block_outputs=blocks, tools=tool_versions(), export_seconds=round(seconds, 3),
        exported_at=timestamp(), details=_with_checkpoint_facts(output.details, loaded),
        head=output.head, quantization=output.quantization, dynamic_shape=job.dynamic_shape)


def _with_checkpoint_facts(details, loaded: LoadedModel):
    """`details` with how the checkpoint was read, where it matters (keys left out of a
    detection checkpoint)."""
    info = loaded.checkpoint
    if not (info and info.ignored_keys):
        return details
    return dataclasses.replace(details, checkpoint_ignored_keys=dict(info.ignored_keys))
