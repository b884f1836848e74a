"""The one atomic writer: a file or folder appears complete under its final name, or not at all.

Content is written under a temporary name beside the target, given the mode a plain
open() would give (or the target's own mode when it exists), and moved into place with
os.replace. Used for manifests, reports, plots and artifacts alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from casvit_deploy.errors import UsageError

STDOUT = "-"  # a report path meaning "print it"


def file_mode(path: Path) -> int:
    """The mode `path` has now, else what open() would create under the current umask."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix) to write to; moved onto `path` when
    the block succeeds, removed when it fails."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: dict) -> None:
    """`data` as indented JSON (NaN and infinities refused: JSON has none)."""
    write_text(path, json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")


def replace(src: Path, dst: Path) -> None:
    """Move `src` (file or folder) onto `dst`; an existing folder at `dst` is moved aside
    first and removed only once `src` is in place (restored if the move fails)."""
    if not (dst.is_dir() and not dst.is_symlink()):
        os.replace(src, dst)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", dir=dst.parent))
    os.replace(dst, aside / dst.name)
    try:
        os.replace(src, dst)
    except BaseException:
        os.replace(aside / dst.name, dst)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def check_writable(path: Path | str | None, option: str) -> None:
    """Refuse, before any work, a report path that cannot be written: a folder, a missing
    or read-only folder. `-` (stdout) and None pass."""
    if path is None or str(path) == STDOUT:
        return
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path}: not writable; choose another path")
