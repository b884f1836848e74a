"""The CPU a figure comes from: its model and the instructions that decide int8 speed.

int8 behaves differently by CPU family: without a dot-product instruction (x86 AVX2 only,
e.g. AMD Zen 3) int8 GEMMs are barely faster than fp32; with AVX-512 VNNI, AVX-VNNI or
AMX (Intel Xeon) they are several times faster; ARM's dotprod and i8mm play that role on
phones. Every int8 speed ratio is reported next to these facts.
"""

from __future__ import annotations

import platform

# /proc/cpuinfo flag -> what it is, for the int8 kernels that runtimes pick
INT8_ISA = {
    "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "amx_int8": "AMX int8",
    "asimddp": "ARM dotprod", "i8mm": "ARM i8mm",
}


def _cpuinfo() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return fh.read().splitlines()
    except OSError:
        return []


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux, else `platform`)."""
    for line in _cpuinfo():
        if line.startswith(("model name", "Model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def int8_isa() -> list[str]:
    """The int8 dot-product instructions this CPU has (INT8_ISA names), [] for none."""
    flags = {flag for line in _cpuinfo() if line.startswith(("flags", "Features"))
             for flag in line.split(":", 1)[1].split()}
    return [name for flag, name in INT8_ISA.items() if flag in flags]


def describe_int8(isa: list[str] | None = None) -> str:
    """e.g. "int8: AVX-512 VNNI, AMX int8" or "int8: no dot-product instructions (VNNI/AMX/dotprod)"."""
    isa = int8_isa() if isa is None else isa
    return f"int8: {', '.join(isa)}" if isa else "int8: no dot-product instructions (VNNI/AMX/dotprod)"


def cpu_record() -> dict:
    """The CPU facts recorded next to a speed figure measured on it."""
    return {"cpu": cpu_model(), "int8_isa": int8_isa()}
