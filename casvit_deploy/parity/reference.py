"""Rebuilding the reference model that an artifact was exported from, from its manifest."""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.errors import UsageError
from casvit_deploy.pipeline import LoadedModel, load_model


def manifest_checkpoint(manifest: dict) -> dict | None:
    """The manifest's checkpoint record {path, sha256, ...}, or None for random weights."""
    ckpt = manifest.get("checkpoint")
    if isinstance(ckpt, str):
        return {"path": ckpt, "sha256": manifest.get("checkpoint_sha256")}
    return ckpt if isinstance(ckpt, dict) and ckpt.get("sha256") else None


def _check_same(loaded: LoadedModel, manifest: dict, artifact: Path) -> LoadedModel:
    """`loaded` if it is the model the manifest describes; UsageError otherwise."""
    record = manifest_checkpoint(manifest)
    expected = record["sha256"] if record else None
    if expected != loaded.checkpoint_sha256:
        what = f"checkpoint sha256 {expected[:12]}..." if expected else "random weights"
        have = f"sha256 {loaded.checkpoint_sha256[:12]}..." if loaded.checkpoint_sha256 else "random weights"
        raise UsageError(f"{artifact} was exported from {what}, but the reference given has {have}; "
                         "pass the checkpoint it was exported from")
    variant = manifest.get("variant")
    if variant and variant != loaded.variant:
        raise UsageError(f"{artifact} is CAS-ViT-{variant}, but the reference model is {loaded.variant}")
    if record is None and manifest.get("seed") is not None and manifest["seed"] != loaded.seed:
        raise UsageError(f"{artifact} was exported with random-weights seed {manifest['seed']}, "
                         f"the reference has seed {loaded.seed}")
    return loaded


def _check_hash(checkpoint: Path, expected: str, artifact: Path) -> None:
    """Refuse a checkpoint whose sha256 is not the one the artifact was exported from."""
    from casvit_deploy.model.checkpoint import sha256_of

    if checkpoint.is_file() and sha256_of(checkpoint) != expected:
        raise UsageError(f"checkpoint {checkpoint} (sha256 {sha256_of(checkpoint)[:12]}...) is not the one "
                         f"{artifact.name} was exported from (sha256 {expected[:12]}...)")


def reference_model(artifact: Path, manifest: dict, checkpoint: Path | None = None,
                    loaded: LoadedModel | None = None) -> LoadedModel:
    """The model the artifact must match: `loaded`, `checkpoint`, the manifest's checkpoint
    path, or the manifest's variant and seed for random weights. Hashes must match."""
    if loaded is not None:
        return _check_same(loaded, manifest, artifact)
    record = manifest_checkpoint(manifest)
    ema = bool((record or {}).get("used_ema") or manifest.get("ema"))
    if checkpoint is None and record is not None:
        checkpoint = Path(record["path"]) if record.get("path") else None
        if checkpoint is None or not checkpoint.is_file():
            raise UsageError(f"{artifact} was exported from checkpoint {record.get('path')}, which is not there; "
                             "pass it with --checkpoint")
    if checkpoint is not None:
        if record is None:
            raise UsageError(f"{artifact} was exported with random weights, not from a checkpoint; drop --checkpoint")
        _check_hash(Path(checkpoint), record["sha256"], artifact)
        return _check_same(load_model(checkpoint, manifest.get("variant"), ema), manifest, artifact)
    variant = manifest.get("variant")
    if not variant:
        raise UsageError(f"manifest of {artifact} names no variant; re-export the artifact")
    return load_model(None, variant, seed=int(manifest.get("seed") or 0))
