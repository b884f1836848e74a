"""`casvit eval`: accuracy of exported artifacts and of the eager fp32 model they came from on
a labelled image set, the top-1 drop with its paired 95% interval, agreement, per-class drops,
a gate (`max_top1_drop`), results recorded in the manifests, and an accuracy/latency/size chart."""

from casvit_deploy.eval.report import EvalReport, ModelResult
from casvit_deploy.eval.run import EvalRequest, evaluate

__all__ = ["EvalReport", "EvalRequest", "ModelResult", "evaluate"]
