"""Opening the user's input files (images, labels): regular files only, so a FIFO, a device
or a socket that carries a file's name is refused at once instead of blocking the read or
streaming without end."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from casvit_deploy.errors import UsageError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def open_regular(path: Path, what: str, hint: str) -> BinaryIO:
    """`path` opened for binary reading if it is a regular file (symbolic links followed);
    otherwise UsageError "`what` PATH is a FIFO (named pipe), not a regular file; `hint`".
    The open never blocks (O_NONBLOCK: a FIFO without a writer is refused, not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise UsageError(f"cannot read {what} {path}: {err.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UsageError(f"{what} {path} is {_kind(mode)}, not a regular file; {hint}")
    return os.fdopen(fd, "rb")
