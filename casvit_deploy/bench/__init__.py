"""Latency benchmarks of CAS-ViT across PyTorch, ONNX Runtime, ExecuTorch and CoreML."""

from casvit_deploy.bench.backends import known_backends
from casvit_deploy.bench.results import BenchReport, BenchResult, Skipped
from casvit_deploy.bench.session import BenchConfig, ModelSource, Progress, plan, run, select_backends
from casvit_deploy.bench.stats import LatencyStats, summarize
from casvit_deploy.bench.timing import Schedule

__all__ = ["known_backends", "BenchConfig", "BenchReport", "BenchResult", "LatencyStats", "ModelSource", "Progress",
           "Schedule", "Skipped", "plan", "run", "select_backends", "summarize"]
