"""Numerical parity of exported artifacts against eager PyTorch (a CI gate)."""

from casvit_deploy.parity.check import check_artifact, record_result
from casvit_deploy.parity.report import BlockResult, InputSetResult, Localization, ParityReport

__all__ = ["BlockResult", "InputSetResult", "Localization", "ParityReport", "check_artifact", "record_result"]
