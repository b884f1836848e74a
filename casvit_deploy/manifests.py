"""Artifact manifests: where they live, reading them, and writing JSON atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from casvit_deploy.errors import UsageError

MANIFEST_SUFFIX = ".manifest.json"


def manifest_path(artifact: Path) -> Path:
    """The manifest that sits next to an artifact: `<artifact name>.manifest.json`."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + MANIFEST_SUFFIX)


def read_manifest(artifact: Path, required: bool = True) -> dict:
    """The manifest next to `artifact` ({} when absent and not `required`);
    UsageError when it is missing, not valid JSON, or not a casvit export manifest."""
    path = manifest_path(artifact)
    if not path.is_file():
        if not required:
            return {}
        raise UsageError(f"{artifact} has no manifest ({path.name}); re-export it with casvit export")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"manifest {path} is not valid JSON ({str(err)[:80]}); re-export the artifact") from None
    if not isinstance(data, dict) or "format" not in data:
        raise UsageError(f"manifest {path} is not a casvit export manifest; re-export the artifact")
    return data


def new_file_mode(path: Path) -> int:
    """The mode `path` has now, else what a plain open() would give under the umask."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_json_atomic(path: Path, data: dict) -> None:
    """Write `data` to a temp file beside `path`, then os.replace it into place (an
    existing file keeps its mode; nothing half-written is ever left under `path`)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, new_file_mode(path))
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
