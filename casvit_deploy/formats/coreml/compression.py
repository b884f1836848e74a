"""What CoreML compression a request asks for and the deployment target it needs: int8
weights (iOS16), palettized weights of 8 or 6 bits (iOS16) or 4 bits in grouped tables
(iOS18), and W8A8 (iOS17). Applying it is compress.py."""

from __future__ import annotations

from dataclasses import dataclass

from casvit_deploy.errors import UsageError
from casvit_deploy.settings import Precision

# The deployment targets this project offers, per platform, oldest first: the versions of one
# column share one Core ML specification (iOS16 = macOS13 = tvOS16 = watchOS9, ...). They are
# coremltools 9's `ct.target` members from iOS16 on (a test holds the two equal), written out so
# that a request is checked without importing coremltools (seconds).
TARGETS = {"iOS": (16, 17, 18, 26), "macOS": (13, 14, 15, 26), "tvOS": (16, 17, 18, 26), "watchOS": (9, 10, 11, 26)}


def target_level(name: str) -> int:
    """The position of deployment target `name` (e.g. "iOS17", "macos14") among TARGETS'
    columns (0: iOS16 and its peers); UsageError for one unknown or older than iOS16."""
    for platform, versions in TARGETS.items():
        version = name[len(platform):] if name.lower().startswith(platform.lower()) else ""
        if version.isdigit() and int(version) in versions:
            return versions.index(int(version))
    raise UsageError(f"unknown or too old deployment target {name!r}: use iOS16 or newer (e.g. iOS17, macOS14)")


def deployment_target(name: str):
    """The coremltools target called `name` (checked by `target_level`)."""
    import coremltools as ct

    level = target_level(name)
    platform = next(p for p in TARGETS if name.lower().startswith(p.lower()))
    return getattr(ct.target, f"{platform}{TARGETS[platform][level]}")


@dataclass(frozen=True)
class Compression:
    """One kind of compression: the flag that asks for it, what it does, and the oldest iOS
    that runs it."""

    flag: str
    description: str
    minimum_ios: int
    palettize_bits: int | None = None

    @property
    def minimum_target(self) -> str:
        return f"iOS{self.minimum_ios}"

    def to_record(self) -> dict:
        return {"flag": self.flag, "description": self.description, "minimum_target": self.minimum_target}


INT8_WEIGHTS = Compression("--precision int8", "int8 weights (linear symmetric, one scale per output channel); "
                           "fp16 activations", 16)
W8A8 = Compression("--precision w8a8", "int8 weights (per output channel) and int8 activations (ranges from "
                   "the calibration set) around conv and linear; adds fp16", 17)


def palettized(bits: int) -> Compression:
    tables = "one table per group of output channels" if bits == 4 else "one table per weight"
    return Compression(f"--palettize {bits}", f"{bits}-bit palettized weights (k-means lookup tables, {tables}); "
                       "fp16 activations", 18 if bits == 4 else 16, bits)


def compression_for(precision: Precision, palettize: int | None) -> Compression | None:
    """The compression that `precision` and `--palettize` ask for (None: none); UsageError
    for a combination that makes no sense."""
    if palettize is not None:
        if precision.calibrated:
            raise UsageError(f"--palettize compresses the weights of an fp16 or fp32 program; it does not "
                             f"combine with --precision {precision.value}")
        return palettized(palettize)
    return {Precision.INT8: INT8_WEIGHTS, Precision.W8A8: W8A8}.get(precision)


def check_target(compression: Compression, target_name: str) -> None:
    """UsageError when deployment target `target_name` is older than `compression` needs."""
    needed = target_level(compression.minimum_target)
    if target_level(target_name) < needed:
        macos = TARGETS["macOS"][needed]
        raise UsageError(f"{compression.flag} needs --deployment-target {compression.minimum_target} or newer "
                         f"(macOS{macos}); got {target_name}")
