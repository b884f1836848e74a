"""Folder locks: one casvit process at a time writes artifacts and manifests in a folder.

The lock is an exclusive `flock` on the folder itself (no lock file is left behind), held
for the whole of an export (staging, load check, parity check, publication) and while a
parity result is added to a manifest. It is re-entrant within a process and released by
the kernel when the process dies, however it dies. Where `fcntl` does not exist (Windows)
no lock is taken.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from casvit_deploy.errors import UsageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

POLL_S = 0.1
_held: dict[str, int] = {}  # real path -> depth of nested holds in this process


class FolderBusy(UsageError):
    """Another process holds the folder's lock."""


def _acquire(fd: int, folder: Path, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise FolderBusy(f"{folder} is in use by another casvit process (an export, or a parity check "
                                 "recording its result); wait for it to finish or choose another folder") from None
            time.sleep(POLL_S)


@contextlib.contextmanager
def folder_lock(folder: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold `folder`'s lock for the block, waiting up to `wait_s` seconds for another
    process to release it (FolderBusy after that)."""
    key = os.path.realpath(folder)
    if fcntl is None or key in _held:
        _held[key] = _held.get(key, 0) + 1
        try:
            yield
        finally:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]
        return
    fd = os.open(key, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        _acquire(fd, Path(folder), wait_s)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)  # releases the flock
