"""Peak memory of the benchmarking process: resident set on the host, allocator peak on CUDA."""

from __future__ import annotations

from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _vm_hwm_bytes() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


class PeakMemory:
    """Tracks peak RSS across a block of work.

    On Linux the kernel's high-water mark (VmHWM) is reset at `start()` (writing 5 to
    /proc/self/clear_refs) and read at `stop()`, so the peak is that of the block. Where
    that is not possible the peak is the largest RSS psutil saw at the sample points.
    """

    def __init__(self, cuda: bool = False):
        try:
            import psutil

            self._proc = psutil.Process()
        except ModuleNotFoundError:  # then only VmHWM (Linux) is available
            self._proc = None
        self._cuda = cuda
        self._samples: list[int] = []
        self.method = "psutil rss samples"

    def start(self) -> None:
        try:
            _CLEAR_REFS.write_text("5")
            self.method = "VmHWM (reset per case)"
        except OSError:
            pass
        if self._cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        self.sample()

    def sample(self) -> None:
        if self._proc is not None:
            self._samples.append(self._proc.memory_info().rss)

    def peak_rss_mb(self) -> float:
        self.sample()
        peak = max(self._samples, default=0)
        if self.method.startswith("VmHWM"):
            peak = max(peak, _vm_hwm_bytes() or 0)
        return peak / 2**20

    def cuda_peak_mb(self) -> float | None:
        if not self._cuda:
            return None
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
