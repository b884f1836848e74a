"""What to benchmark: variants, a checkpoint, or artifacts (with their manifests)."""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.bench.backends import ARTIFACT_BACKENDS
from casvit_deploy.bench.session import ModelSource
from casvit_deploy.errors import UsageError
from casvit_deploy.manifests import read_manifest


def model_sources(variants: list[str], checkpoint: Path | None, ema: bool, resolution: int | None) -> list[ModelSource]:
    """One source per variant (seeded random weights), or the checkpoint's model."""
    from casvit_deploy.pipeline import check_resolution, load_model

    if checkpoint is not None:
        if len(variants) > 1:
            raise UsageError("give one --variant with --checkpoint (it names the checkpoint's architecture)")
        loaded = load_model(checkpoint, variants[0] if variants else None, ema)
        return [ModelSource(checkpoint.stem, loaded, check_resolution(resolution or loaded.native_resolution))]
    sources = []
    for name in dict.fromkeys(variants or ["xs"]):
        loaded = load_model(variant=name)
        sources.append(ModelSource(loaded.variant, loaded, check_resolution(resolution or loaded.native_resolution)))
    return sources


def artifact_source(artifact: Path, resolution: int | None) -> ModelSource:
    """An artifact, its backend from the suffix, and (from its manifest) the model it was
    exported from, rebuilt for the eager baseline and FLOP counts."""
    artifact = Path(artifact)
    if not artifact.exists():
        raise UsageError(f"artifact {artifact} does not exist")
    backend = ARTIFACT_BACKENDS.get(artifact.suffix.lower())
    if backend is None:
        raise UsageError(f"{artifact}: unknown artifact type; expected one of {', '.join(ARTIFACT_BACKENDS)}")
    manifest = read_manifest(artifact, required=False)
    if backend == "executorch" and manifest.get("backend") == "portable":
        backend = "executorch-portable"  # undelegated program: same runtime, its time budget
    resolution = manifest.get("resolution") or resolution
    if not resolution:
        raise UsageError(f"{artifact} has no manifest: give --resolution")
    batch = manifest.get("batch")
    batches = (batch,) if batch and not manifest.get("dynamic_batch") else None
    return ModelSource(artifact.name, _rebuild(manifest), int(resolution), artifact, backend,
                       rewrite=bool(manifest.get("rewrite", True)), batches=batches)


def _rebuild(manifest: dict):
    """The model an artifact came from (checkpoint if still there, else seeded variant), or None."""
    from casvit_deploy.pipeline import load_model

    checkpoint = manifest.get("checkpoint")
    path = checkpoint.get("path") if isinstance(checkpoint, dict) else checkpoint
    if path and Path(path).is_file():
        return load_model(path, manifest.get("variant"), bool(manifest.get("ema")))
    if manifest.get("variant") and manifest.get("seed") is not None and not path:
        return load_model(variant=manifest["variant"], seed=int(manifest["seed"]))
    return None
