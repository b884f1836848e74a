"""The model an artifact must match, rebuilt from what its manifest records: the recorded
checkpoint (its sha256 checked here, and only here), a checkpoint given in its place, or
the recorded variant and seed of random weights."""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.errors import UsageError
from casvit_deploy.model.loading import LoadedModel, load_model


def reference_model(manifest: Manifest, artifact: Path, checkpoint: Path | None = None,
                    loaded: LoadedModel | None = None) -> LoadedModel:
    """The model the artifact must match: `loaded`, `checkpoint`, the recorded checkpoint,
    or the recorded variant and seed for random weights; UsageError when it is not the
    model the artifact was exported from."""
    artifact = Path(artifact)
    if loaded is None:
        loaded = _load(manifest, artifact, checkpoint)
    _check_same(manifest, loaded, artifact)
    return loaded


def _load(manifest: Manifest, artifact: Path, checkpoint: Path | None) -> LoadedModel:
    if manifest.checkpoint is None:
        if checkpoint is not None:
            raise UsageError(f"{artifact} was exported with random weights, not from a checkpoint; "
                             "drop --checkpoint")
        return load_model(None, manifest.variant, seed=manifest.seed or 0, backbone=manifest.is_backbone)
    path = Path(checkpoint) if checkpoint is not None else manifest.checkpoint_path(artifact)
    if not path.is_file():
        raise UsageError(f"{artifact} was exported from checkpoint {path}, which is not there; "
                         "pass it with --checkpoint")
    from casvit_deploy.model.checkpoint import sha256_of

    found = sha256_of(path)
    if found != manifest.checkpoint.sha256:
        raise UsageError(f"checkpoint {path} (sha256 {found[:12]}...) is not the one {artifact.name} was "
                         f"exported from (sha256 {manifest.checkpoint.sha256[:12]}...)")
    return load_model(path, manifest.variant, manifest.checkpoint.used_ema)


def _check_same(manifest: Manifest, loaded: LoadedModel, artifact: Path) -> None:
    expected = manifest.checkpoint.sha256 if manifest.checkpoint else None
    if expected != loaded.checkpoint_sha256:
        what = f"checkpoint sha256 {expected[:12]}..." if expected else "random weights"
        have = f"sha256 {loaded.checkpoint_sha256[:12]}..." if loaded.checkpoint_sha256 else "random weights"
        raise UsageError(f"{artifact} was exported from {what}, but the reference given has {have}; "
                         "pass the checkpoint it was exported from")
    if manifest.variant != loaded.variant:
        raise UsageError(f"{artifact} is CAS-ViT-{manifest.variant}, but the reference model is {loaded.variant}")
    if manifest.is_backbone != loaded.is_backbone:
        kinds = ("a classifier", "a dense-prediction backbone")
        raise UsageError(f"{artifact} was exported from {kinds[manifest.is_backbone]}, but the reference model is "
                         f"{kinds[loaded.is_backbone]}")
    if expected is None and (manifest.seed or 0) != loaded.seed:
        raise UsageError(f"{artifact} was exported with random-weights seed {manifest.seed}, "
                         f"the reference has seed {loaded.seed}")
