"""The one atomic writer: a file or folder appears complete under its final name, or not at all.

Content is written under a temporary name beside the target, given the mode a plain
open() would give (or the target's own mode when it exists), and moved into place with
os.replace. Used for manifests, reports, plots and artifacts alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from casvit_deploy.errors import UsageError

STDOUT = "-"  # a report path meaning "print it"
# The names of what a killed writer can leave behind (mkstemp/mkdtemp add 8 characters).
_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp(\.[^.]+)?$")
_SET_ASIDE = re.compile(r"^\.(?P<target>.+)\.old\.[a-z0-9_]{8}$")


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


@contextlib.contextmanager
def temp_files_in(folder: Path) -> Iterator[None]:
    """Within the block, what `tempfile` would create in the system temporary folder (third-party
    code that takes no folder: ONNX Runtime's quantizer, coremltools, ExecuTorch's serializers) is
    created in `folder` instead, so a killed process leaves it where the next run cleans up.
    Process-wide while it lasts (`tempfile.tempdir`), restored after. Enter it only after
    torch.export has run once in the process: torch keeps paths under the temporary folder that
    it derives when its compiler modules are first imported."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = previous


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


@dataclass(frozen=True)
class Leftover:
    """What a writer killed mid-way left in a folder: a temporary file (`set_aside` False)
    or, from `replace`, a folder holding the previous version of `target` (True)."""

    path: Path
    target: str
    set_aside: bool


def leftovers(folder: Path) -> list[Leftover]:
    """The temporaries of `atomic_path` and the set-aside folders of `replace` in `folder`."""
    found = []
    for entry in sorted(Path(folder).iterdir()):
        if entry.is_file() and (match := _TEMPORARY.match(entry.name)):
            found.append(Leftover(entry, match["target"], False))
        elif entry.is_dir() and (match := _SET_ASIDE.match(entry.name)):
            found.append(Leftover(entry, match["target"], True))
    return found


def _can_create_in(folder: Path) -> bool:
    """True when a file can be created in `folder` (tried, not inferred from mode bits:
    root ignores them and a read-only mount refuses everyone)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def check_writable(path: Path | str | None, option: str) -> None:
    """Refuse, before any work, a report path that cannot be written: a folder, a missing
    or read-only folder, a read-only file. `-` (stdout) and None pass."""
    if path is None or str(path) == STDOUT:
        return
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: folder {parent} does not exist")
    effective = os.access in os.supports_effective_ids
    if not _can_create_in(parent) or (path.exists() and not os.access(path, os.W_OK, effective_ids=effective)):
        raise UsageError(f"{option} {path}: not writable; choose another path")
