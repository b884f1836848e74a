"""What to benchmark: variants, a checkpoint, or artifacts (with their manifests)."""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.bench.backends import known_backends
from casvit_deploy.bench.session import ModelSource
from casvit_deploy.errors import UsageError
from casvit_deploy.formats import format_for_path
from casvit_deploy.model.loading import check_resolution, load_model
from casvit_deploy.parity.reference import reference_model
from casvit_deploy.settings import Resolution
from casvit_deploy.store import manifests
from casvit_deploy.store.runners import open_runner


def model_sources(variants: list[str], checkpoint: Path | None, ema: bool, resolution: Resolution | int | str | None,
                  backbone: bool = False) -> list[ModelSource]:
    """One source per variant (seeded random weights; with `backbone` in the dense-prediction
    form), or the checkpoint's model, at `resolution` (default: the model's native size)."""
    if checkpoint is not None:
        if len(variants) > 1:
            raise UsageError("give one --variant with --checkpoint (it names the checkpoint's architecture)")
        loaded = load_model(checkpoint, variants[0] if variants else None, ema, backbone=backbone)
        return [ModelSource(checkpoint.stem, loaded, loaded.input_resolution(resolution))]
    sources = []
    for name in dict.fromkeys(variants or ["xs"]):
        loaded = load_model(variant=name, backbone=backbone)
        label = loaded.variant + (" backbone" if backbone else "")
        sources.append(ModelSource(label, loaded, loaded.input_resolution(resolution)))
    return sources


def _backend(fmt, manifest: Manifest | None) -> str | None:
    """The bench backend that times this artifact, as its format says (e.g. an undelegated
    .pte: the portable one)."""
    return fmt.backend_for(manifest.options if manifest is not None else fmt.options())


def _artifact_size(manifest: Manifest, artifact: Path, resolution) -> Resolution:
    """The manifest's size; another (`resolution`) only for an artifact with a free height and width."""
    if resolution is None:
        return manifest.resolution
    size = check_resolution(resolution)
    if size != manifest.resolution and not manifest.dynamic_shape:
        raise UsageError(f"{artifact.name} takes {manifest.resolution} inputs only (exported without "
                         "--dynamic-shape); drop --resolution")
    return size


def artifact_source(artifact: Path, resolution: Resolution | int | str | None) -> ModelSource:
    """An artifact, its backend from the format table, and (from its manifest) the model it
    was exported from, rebuilt for the eager baseline and FLOP counts when still possible.
    `resolution` is needed without a manifest, and chooses the size of a free-size artifact."""
    artifact = Path(artifact)
    fmt = format_for_path(artifact)
    manifest = manifests.find(artifact)
    backend = _backend(fmt, manifest)
    if backend not in known_backends():
        raise UsageError(f"{artifact}: no benchmark backend for {fmt.name}")
    if manifest is None:
        if not resolution:
            raise UsageError(f"{artifact} has no manifest: give --resolution")
        return ModelSource(artifact.name, None, check_resolution(resolution), artifact, backend,
                           note="the artifact has no manifest, so no model to compare with")
    size = _artifact_size(manifest, artifact, resolution)
    loaded, note = _reference(manifest, artifact)
    return ModelSource(artifact.name, loaded, size, artifact, backend, manifest.form,
                       batches=None if manifest.dynamic_batch else (manifest.batch,), note=note,
                       precision=manifest.precision)


def _reference(manifest: Manifest, artifact: Path):
    """(the model the artifact came from, "") or (None, why it cannot be rebuilt here)."""
    try:
        return reference_model(manifest, artifact), ""
    except UsageError as err:
        return None, f"no eager baseline: {err}"


def check_loads(artifact: Path) -> None:
    """UsageError (exit 2) with the reason when `artifact` does not load, before any timing."""
    with open_runner(artifact):
        pass
