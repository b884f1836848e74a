"""Permission tests that mean something when the suite runs as root (root ignores mode
bits): the block runs with the effective uid of `nobody`, or as is for other users."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

NOBODY = 65534


@contextlib.contextmanager
def unprivileged(enabled: bool = True):
    """Run the block as `nobody` when root (the real uid stays root, to switch back)."""
    if not enabled or os.geteuid() != 0:
        yield
        return
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


@contextlib.contextmanager
def privileged():
    """Inside `unprivileged`, run the block as root again (e.g. to change a folder's mode)."""
    if os.getuid() != 0 or os.geteuid() == 0:
        yield
        return
    os.seteuid(0)
    try:
        yield
    finally:
        os.seteuid(NOBODY)


def public_folder() -> Path:
    """A fresh folder that every user can reach and write (remove it when done)."""
    path = Path(tempfile.mkdtemp(prefix="casvit-test-"))
    path.chmod(0o777)
    return path
