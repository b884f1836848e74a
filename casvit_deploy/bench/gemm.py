"""Dense matrix-multiply throughput: the machine's practical compute ceiling."""

from __future__ import annotations

import time


def gemm_gflops(device: str = "cpu", size: int = 1024, dtype: str = "fp32", seconds: float = 0.5) -> float:
    """Median GFLOP/s (2·n³ per call) of an n×n by n×n matmul on `device`, timed for about
    `seconds` after warm-up. Uses torch's current thread setting on the CPU."""
    import torch

    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16}[dtype]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device, torch_dtype)
    b = torch.randn(size, size, generator=gen).to(device, torch_dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(3):
        torch.mm(a, b)
    sync()
    rates, spent = [], 0.0
    while spent < seconds or len(rates) < 3:
        start = time.perf_counter()
        torch.mm(a, b)
        sync()
        elapsed = time.perf_counter() - start
        spent += elapsed
        rates.append(2 * size**3 / elapsed / 1e9)
    rates.sort()
    return rates[len(rates) // 2]
