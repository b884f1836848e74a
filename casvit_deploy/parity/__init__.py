"""Numerical parity of exported artifacts against eager PyTorch (a CI gate)."""

from casvit_deploy.parity.check import check_artifact
from casvit_deploy.parity.report import BlockResult, InputSetResult, Localization, ParityReport
from casvit_deploy.parity.thresholds import DEFAULTS, Thresholds, defaults_for

__all__ = ["DEFAULTS", "BlockResult", "InputSetResult", "Localization", "ParityReport", "Thresholds",
           "check_artifact", "defaults_for"]
