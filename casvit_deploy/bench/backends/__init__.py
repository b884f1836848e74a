"""The backend registry: every backend `casvit bench` knows, in the order reports list them."""

from casvit_deploy.bench.backends.artifacts import CoreML, ExecuTorch, ExecuTorchPortable, OnnxRuntime
from casvit_deploy.bench.backends.base import Backend, Case, Prepared
from casvit_deploy.bench.backends.pytorch import Compile, CudaGraph, Eager

BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Eager(), Compile(), CudaGraph(), OnnxRuntime(), ExecuTorch(), ExecuTorchPortable(), CoreML())}

__all__ = ["BACKENDS", "Backend", "Case", "Prepared"]
