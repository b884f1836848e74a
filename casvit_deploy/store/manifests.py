"""Manifests on disk: `<artifact>.manifest.json` next to every artifact, read with the format
table, written atomically, and given parity and evaluation records under the folder's lock.
This is the only place that reads or writes manifest files.

A manifest that is missing (where one is required), unreadable or invalid is a one-line
ManifestError (exit 2) naming the file and, for an invalid one, the field.
"""

from __future__ import annotations

import json
from pathlib import Path

from casvit_deploy import atomic
from casvit_deploy.artifacts.fields import FieldError
from casvit_deploy.artifacts.files import artifact_sha256
from casvit_deploy.artifacts.format import Format
from casvit_deploy.artifacts.manifest import MAX_EVALUATIONS, Manifest
from casvit_deploy.artifacts.records import EvaluationRecord, ParityRecord
from casvit_deploy.errors import UsageError, first_line
from casvit_deploy.formats import FORMATS
from casvit_deploy.locks import folder_lock

SUFFIX = ".manifest.json"
MAX_BYTES = 16 << 20  # a manifest is a few kB; anything this large is not one
RECORD_LOCK_WAIT_S = 10.0  # how long adding a parity record waits for an export into the folder


class ManifestError(UsageError):
    """A manifest that is missing, unreadable or invalid."""


class StaleRecord(UsageError):
    """A parity or evaluation record about bytes that are no longer the artifact's (not recorded)."""


def manifest_path(artifact: Path) -> Path:
    """The manifest that sits next to an artifact: `<artifact name>.manifest.json`."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + SUFFIX)


def _format(name: str) -> Format:
    if name not in FORMATS:
        raise FieldError(f"field 'format' must be one of {', '.join(FORMATS)}, got {name!r}")
    return FORMATS[name]


def parse(data: object) -> Manifest:
    """A manifest from its JSON data; FieldError naming the first bad field."""
    return Manifest.from_dict(data, _format)


def find(artifact: Path) -> Manifest | None:
    """The artifact's manifest, or None when there is none (an invalid one is an error)."""
    path = manifest_path(artifact)
    if not path.exists():
        return None
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ManifestError(f"manifest {path} is {path.stat().st_size} bytes, too large to be one; "
                                "re-export the artifact")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        reason = getattr(err, "strerror", None) or first_line(err, 80)
        raise ManifestError(f"manifest {path} is not readable JSON ({reason}); re-export the artifact") from None
    try:
        return parse(data)
    except UsageError as err:
        raise ManifestError(f"manifest {path}: {err}; re-export the artifact") from None


def load(artifact: Path) -> Manifest:
    """The artifact's manifest; ManifestError when it is missing or invalid."""
    manifest = find(artifact)
    if manifest is None:
        raise ManifestError(f"{artifact} has no manifest ({manifest_path(artifact).name}); "
                            "re-export it with casvit export")
    return manifest


def save(manifest: Manifest, artifact: Path) -> None:
    """Write `manifest` atomically next to `artifact`."""
    atomic.write_json(manifest_path(artifact), manifest.to_dict())


def append_parity(artifact: Path, record: ParityRecord, export_sha256: str | None = None) -> Manifest:
    """Add `record` to the manifest on disk now (re-read, so nothing else is lost), under
    the folder's lock. StaleRecord, and nothing written, unless the artifact still has the
    bytes the record is about (`record.sha256`) and, with `export_sha256`, the manifest
    still describes the export that was checked."""
    return _add(artifact, record.sha256, export_sha256, lambda manifest: manifest.parity.append(record))


def append_evaluation(artifact: Path, record: EvaluationRecord, export_sha256: str | None = None) -> Manifest:
    """Add an evaluation record as `append_parity` adds a parity record (same lock and
    checks); only the newest MAX_EVALUATIONS records are kept."""
    def add(manifest: Manifest) -> None:
        manifest.evaluations = [*manifest.evaluations, record][-MAX_EVALUATIONS:]

    return _add(artifact, record.sha256, export_sha256, add)


def _add(artifact: Path, sha256: str | None, export_sha256: str | None, change) -> Manifest:
    """`change` the manifest on disk and save it, under the folder's lock, while the artifact
    still has the bytes `sha256` and the manifest still describes `export_sha256`."""
    artifact = Path(artifact)
    with folder_lock(artifact.parent, wait_s=RECORD_LOCK_WAIT_S):
        manifest = load(artifact)
        if export_sha256 is not None and manifest.sha256 != export_sha256:
            raise StaleRecord(f"{artifact.name} was exported again while it was checked")
        if sha256 is not None and artifact_sha256(artifact) != sha256:
            raise StaleRecord(f"{artifact.name} changed while it was checked")
        change(manifest)
        save(manifest, artifact)
    return manifest
