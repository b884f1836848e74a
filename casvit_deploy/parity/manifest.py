"""Reading an artifact's manifest and recording parity results in it (atomically)."""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.manifests import manifest_path, read_manifest, write_json_atomic


def record_parity(artifact: Path, result: dict) -> None:
    """Set the manifest's "parity" entry to `result`, keeping everything else."""
    manifest = read_manifest(artifact)
    manifest["parity"] = result
    write_json_atomic(manifest_path(artifact), manifest)
