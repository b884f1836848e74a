"""How far an artifact's outputs are from the reference, and whether that passes: the one
set of metrics and thresholds used by the export load check and by `casvit parity`."""

from casvit_deploy.numerics.metrics import OutputMetrics, compare, plain, sqnr_db, topk_agreement
from casvit_deploy.numerics.thresholds import DEFAULTS, ThresholdOverrides, Thresholds, defaults_for
from casvit_deploy.numerics.verdict import allowed_abs, judge, margins, metric_failures, structural_failures

__all__ = ["DEFAULTS", "OutputMetrics", "ThresholdOverrides", "Thresholds", "allowed_abs", "compare", "defaults_for",
           "judge", "margins", "metric_failures", "plain", "sqnr_db", "structural_failures", "topk_agreement"]
