"""Atomic publication: build in a hidden folder inside the output folder, then rename.

An artifact (file or `.mlpackage` folder) and its manifest appear under their final
names only when complete. A failure or interrupt removes the staging folder and leaves
any previous artifact untouched; an existing artifact is replaced only with `force`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from casvit_deploy import atomic
from casvit_deploy.artifacts.manifest import manifest_path
from casvit_deploy.errors import UsageError

STAGING_PREFIX = ".casvit-staging-"


def ensure_writable(out_dir: Path) -> Path:
    """Create `out_dir` if needed; UsageError when it cannot be created or written."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output folder {out_dir} is a file; choose a folder with --out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out_dir, prefix=STAGING_PREFIX)
        probe.close()
    except OSError as err:
        raise UsageError(f"output folder {out_dir} is not writable ({err.strerror}); choose another with --out") from None
    return out_dir


def refuse_overwrite(final: Path, force: bool) -> None:
    if (final.exists() or manifest_path(final).exists()) and not force:
        raise UsageError(f"{final} already exists; pass --force to replace it")


@contextlib.contextmanager
def staging_dir(out_dir: Path) -> Iterator[Path]:
    """A fresh hidden folder inside `out_dir`, removed on exit whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def publish(staged: Path, final: Path, force: bool) -> None:
    """Move the staged artifact, then its manifest, to their final names."""
    refuse_overwrite(final, force)
    atomic.replace(staged, final)
    os.replace(manifest_path(staged), manifest_path(final))
