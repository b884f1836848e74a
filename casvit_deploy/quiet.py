"""Keep third-party chatter (progress bars, deprecation warnings, native logs) off the CLI.

Errors still surface: they are raised as exceptions and reported by the commands.
Set CASVIT_DEBUG=1 to see everything the backends print.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings


def debugging() -> bool:
    return os.environ.get("CASVIT_DEBUG", "") not in ("", "0")


@contextlib.contextmanager
def quiet_third_party():
    """Silence progress bars, warnings and INFO/WARNING logs for the block; the warning
    filters, logging threshold and environment are restored after.

    Log records below ERROR are dropped with `logging.disable`, a process-wide threshold:
    per-logger levels are not enough, as torch resets its loggers' levels while exporting
    (the "torchvision is not installed. Skipping torchvision::..." warnings of torch.onnx).
    """
    if debugging():
        yield
        return
    threshold = logging.root.manager.disable
    tqdm = os.environ.get("TQDM_DISABLE")
    os.environ.setdefault("TQDM_DISABLE", "1")
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning, UserWarning):
            warnings.filterwarnings("ignore", category=category)
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(threshold)
            if tqdm is None:
                os.environ.pop("TQDM_DISABLE", None)


@contextlib.contextmanager
def stdout_silenced():
    """Drop what Python code prints to stdout in the block (some backends print progress)."""
    if debugging():
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def native_stderr_silenced():
    """Send what native code writes to file descriptor 2, or through `sys.stderr` (as
    some bindings do when `sys.stderr` is not fd 2), to /dev/null for the block."""
    if debugging():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
