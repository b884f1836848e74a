"""The backend registry: every backend `casvit bench` knows, in the order reports list them:
the PyTorch backends, then each format's bench targets in format-table order."""

from casvit_deploy.bench.backends.artifacts import ArtifactBackend
from casvit_deploy.bench.backends.base import Backend, Case, Prepared
from casvit_deploy.bench.backends.pytorch import Compile, CudaGraph, Eager
from casvit_deploy.formats import FORMATS


def known_backends() -> dict[str, Backend]:
    """Name -> backend, for the formats registered now (a format added at run time is included)."""
    artifact = [ArtifactBackend(fmt, target) for fmt in FORMATS.values() for target in fmt.bench]
    return {b.name: b for b in (Eager(), Compile(), CudaGraph(), *artifact)}


__all__ = ["ArtifactBackend", "Backend", "Case", "Prepared", "known_backends"]
