"""What an export records: the manifest of a finished artifact, and the string metadata
embedded inside the artifact itself (ONNX metadata props, CoreML user metadata)."""

from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path

from casvit_deploy.artifacts.files import artifact_sha256, artifact_size
from casvit_deploy.artifacts.manifest import Manifest, checkpoint_record
from casvit_deploy.export.base import ExportJob, FormatOutput
from casvit_deploy.model.loading import LoadedModel
from casvit_deploy.settings import Form

TOOLS = ("torch", "onnx", "onnxruntime", "onnxscript", "coremltools", "executorch", "casvit-deploy")


def tool_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape an artifact (None when absent)."""
    found = {}
    for name in TOOLS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def embedded_metadata(loaded: LoadedModel, job_resolution: int, preprocessing, passes: list[str]) -> dict[str, str]:
    """String metadata embedded inside the artifact itself."""
    tools = {f"version_{k}": str(v) for k, v in tool_versions().items() if v}
    return {"variant": loaded.variant, "resolution": str(job_resolution), "weights": loaded.weights,
            "checkpoint_sha256": loaded.checkpoint_sha256 or "", "num_classes": str(loaded.num_classes),
            "mean": ",".join(map(str, preprocessing.mean)), "std": ",".join(map(str, preprocessing.std)),
            "passes": ",".join(passes), **tools}


def build_manifest(loaded: LoadedModel, fmt_name: str, job: ExportJob, output: FormatOutput, staged: Path,
                   final: Path, form: Form, passes: list[str], blocks: dict[str, str], seconds: float) -> Manifest:
    """Every fact about one finished artifact, staged at `staged`, published as `final`."""
    return Manifest(
        format=fmt_name, file=final.name, size_bytes=artifact_size(staged), sha256=artifact_sha256(staged),
        inputs=output.inputs, outputs=output.outputs, preprocessing=output.preprocessing or job.preprocessing,
        variant=loaded.variant, num_classes=loaded.num_classes,
        distillation=getattr(loaded.model, "dist_head", None) is not None,
        weights=loaded.weights, checkpoint=checkpoint_record(loaded, final.parent),
        seed=None if loaded.checkpoint else loaded.seed, form=form, passes=passes, precision=job.precision,
        resolution=job.resolution, batch=job.batch, dynamic_batch=job.dynamic_batch, options=job.options,
        block_outputs=blocks, tools=tool_versions(), export_seconds=round(seconds, 3),
        exported_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), details=output.details, head=output.head,
        quantization=output.quantization)
