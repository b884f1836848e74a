"""Reading an artifact's manifest and recording parity results in it (atomically)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from casvit_deploy.errors import UsageError
from casvit_deploy.runtime.base import manifest_path


def read_manifest(artifact: Path) -> dict:
    """The manifest next to `artifact`; UsageError when missing or not a JSON object."""
    path = manifest_path(artifact)
    if not path.is_file():
        raise UsageError(f"{artifact} has no manifest ({path.name}); re-export it with casvit export")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"manifest {path} is not valid JSON ({err}); re-export the artifact") from None
    if not isinstance(data, dict):
        raise UsageError(f"manifest {path} is not a JSON object; re-export the artifact")
    return data


def new_file_mode(path: Path) -> int:
    """The mode `path` has now, else what a plain open() would give under the umask."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_json_atomic(path: Path, data: dict) -> None:
    """Write `data` to a temp file beside `path`, then os.replace it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, new_file_mode(path))
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_parity(artifact: Path, result: dict) -> None:
    """Set the manifest's "parity" entry to `result`, keeping everything else."""
    manifest = read_manifest(artifact)
    manifest["parity"] = result
    write_json_atomic(manifest_path(artifact), manifest)
