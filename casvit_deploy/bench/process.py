"""Process-wide settings a benchmark needs, set for the run and restored on exit: torch's
intra-op threads, ExecuTorch's shared threadpool (XNNPACK's), dynamo's recompile limit."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

RECOMPILE_LIMIT = 64  # torch.compile sees one graph per case; the default limit (8) is too low


def _executorch_threads(threads: int | None) -> int | None:
    """Set ExecuTorch's threadpool size when given; the size before (None without ExecuTorch)."""
    if importlib.util.find_spec("executorch") is None:
        return None
    from casvit_deploy.quiet import native_stderr_silenced

    with native_stderr_silenced():  # its CPU probing writes to stderr when the pool starts
        from executorch.extension.pybindings import portable_lib

        before = portable_lib._threadpool_get_thread_count()
        if threads and threads != before:
            portable_lib._unsafe_reset_threadpool(threads)
    return before


@contextlib.contextmanager
def process_settings(threads: int, executorch: bool = False, compile: bool = False) -> Iterator[None]:
    """`threads` for torch (and ExecuTorch when `executorch`), a higher dynamo recompile
    limit when `compile`; everything restored afterwards."""
    import torch

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    et_threads = _executorch_threads(threads) if executorch else None
    limit = None
    if compile:
        limit = torch._dynamo.config.recompile_limit
        torch._dynamo.config.recompile_limit = max(limit, RECOMPILE_LIMIT)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        if et_threads is not None:
            _executorch_threads(et_threads)
        if limit is not None:
            torch._dynamo.config.recompile_limit = limit
