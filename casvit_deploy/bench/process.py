"""Process-wide settings a benchmark needs, set for the run and restored on exit: torch's
intra-op threads, each backend's own (e.g. ExecuTorch's shared threadpool), dynamo's
recompile limit."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

RECOMPILE_LIMIT = 64  # torch.compile sees one graph per case; the default limit (8) is too low


def usable_cores() -> int:
    """The CPU cores this process may run on: the default thread count of bench and eval."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def process_settings(threads: int, backends: Sequence = (), compile: bool = False) -> Iterator[None]:
    """`threads` for torch and for each of `backends` that has process-wide settings (its
    `process(threads)`), a higher dynamo recompile limit when `compile`; everything restored
    afterwards."""
    import torch

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    limit = None
    if compile:
        limit = torch._dynamo.config.recompile_limit
        torch._dynamo.config.recompile_limit = max(limit, RECOMPILE_LIMIT)
    try:
        with contextlib.ExitStack() as stack:
            for backend in backends:
                if hasattr(backend, "process"):
                    stack.enter_context(backend.process(threads))
            yield
    finally:
        torch.set_num_threads(torch_threads)
        if limit is not None:
            torch._dynamo.config.recompile_limit = limit
