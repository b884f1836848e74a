"""The machine and software that produced a result: recorded with every report."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

from casvit_deploy.machine import cpu_model, describe_int8, int8_isa

PACKAGES = ("casvit-deploy", "torch", "numpy", "onnx", "onnxruntime", "executorch", "coremltools", "triton")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def gpu_info() -> dict | None:
    """Name, memory and CUDA version of the current CUDA device, or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
            "count": torch.cuda.device_count()}


def _cores_and_memory() -> tuple[int | None, int | None, float | None]:
    try:
        import psutil
    except ModuleNotFoundError:  # psutil is a dependency, but a bare checkout may lack it
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
        return None, os.cpu_count(), round(pages / 2**30, 1) or None
    return (psutil.cpu_count(logical=False), psutil.cpu_count(logical=True),
            round(psutil.virtual_memory().total / 2**30, 1))


def capture_environment() -> dict:
    """CPU model and core counts, GPU, OS, Python and library versions."""
    physical, logical, memory_gb = _cores_and_memory()
    return {
        "cpu": cpu_model(),
        "int8_isa": int8_isa(),
        "cores_physical": physical,
        "cores_logical": logical,
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": memory_gb,
        "gpu": gpu_info(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "packages": {p: v for p in PACKAGES if (v := _version(p))},
        "hostname": platform.node(),
    }


def describe_machine(env: dict) -> str:
    """One line for reports: CPU, cores, GPU, OS."""
    gpu = env.get("gpu")
    gpu_text = f", GPU {gpu['name']} (CUDA {gpu['cuda']})" if gpu else ", no GPU"
    isa = f" ({describe_int8(env['int8_isa'])})" if "int8_isa" in env else ""
    return (f"{env['cpu']}{isa}, {env['cores_usable']} usable cores, {env['memory_gb']} GB RAM{gpu_text}; "
            f"{env['os']}; Python {env['python']}, torch {env['packages'].get('torch', '?')}")
