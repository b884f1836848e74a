"""PyTorch backends: eager, torch.compile and CUDA graphs, on CPU or CUDA."""

from __future__ import annotations

import importlib.util
import shutil
import time
from collections.abc import Callable

from casvit_deploy.bench.backends.base import Case, Prepared, input_batch
from casvit_deploy.bench.timing import CudaEvents, WallClock
from casvit_deploy.settings import Device, Precision

DTYPES = {Precision.FP32: "float32", Precision.FP16: "float16"}


def _model_and_input(case: Case):
    """The case's model form and input on its device, dtype and memory format."""
    import torch

    from casvit_deploy.rewrite import deploy_form

    model, passes = deploy_form(case.loaded.model, case.form, case.disable)
    dtype = getattr(torch, DTYPES[case.precision])
    fmt = torch.channels_last if case.channels_last else torch.contiguous_format
    model = model.to(case.device.value, dtype, memory_format=fmt).eval()
    x = torch.from_numpy(input_batch(case.batch, case.resolution)).to(case.device.value, dtype, memory_format=fmt)
    return model, x, passes


def _clock(device: Device):
    return CudaEvents() if device is Device.CUDA else WallClock()


def _engine(case: Case, what: str) -> str:
    import torch

    layout = ", channels-last" if case.channels_last else ""
    return f"torch {torch.__version__} {what} ({case.device.value}{layout})"


def _any_precision(self, precision: Precision) -> str | None:
    if precision not in DTYPES:
        return f"PyTorch backends run {' and '.join(p.value for p in DTYPES)}; int8 runs on onnxruntime and executorch"
    return None


def _inference(fn: Callable, x) -> Callable[[], object]:
    import torch

    def run():
        with torch.inference_mode():
            return fn(x)

    return run


class Eager:
    name = "eager"
    summary = "PyTorch eager (the baseline)"
    unsupported = _any_precision

    def unavailable(self, device: Device) -> str | None:
        return None

    def prepare(self, case: Case, progress) -> Prepared:
        start = time.perf_counter()
        model, x, passes = _model_and_input(case)
        return Prepared(_inference(model, x), _engine(case, "eager"), time.perf_counter() - start,
                        _clock(case.device), passes, threads=case.threads)


class Compile:
    name = "compile"
    summary = "torch.compile (Inductor); first inference includes compilation"
    unsupported = _any_precision

    def unavailable(self, device: Device) -> str | None:
        if device is Device.CUDA and importlib.util.find_spec("triton") is None:
            return "torch.compile on CUDA needs Triton: pip install triton"
        if device is Device.CPU and not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
            return "torch.compile on CPU needs a C++ compiler (g++ or clang++) on PATH"
        return None

    def prepare(self, case: Case, progress) -> Prepared:
        import torch

        start = time.perf_counter()
        model, x, passes = _model_and_input(case)
        mode = None if case.compile_mode == "default" else case.compile_mode
        compiled = torch.compile(model, mode=mode)
        return Prepared(_inference(compiled, x), _engine(case, f"torch.compile mode={case.compile_mode}"),
                        time.perf_counter() - start, _clock(case.device), passes, threads=case.threads)


class CudaGraph:
    name = "cudagraph"
    summary = "PyTorch eager captured once into a CUDA graph and replayed"
    unsupported = _any_precision

    def unavailable(self, device: Device) -> str | None:
        return None if device is Device.CUDA else "CUDA graphs need --device cuda"

    def prepare(self, case: Case, progress) -> Prepared:
        import torch

        start = time.perf_counter()
        model, x, passes = _model_and_input(case)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):  # cuDNN picks its algorithms before capture
                model(x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            model(x)
        torch.cuda.synchronize()
        return Prepared(graph.replay, _engine(case, "CUDA graph replay"), time.perf_counter() - start,
                        CudaEvents(), passes, close=graph.reset)
