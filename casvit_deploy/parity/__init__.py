"""Numerical parity of exported artifacts against eager PyTorch (a CI gate)."""

from casvit_deploy.parity.check import check_artifact, parity_record, record_result
from casvit_deploy.parity.report import InputSetResult, ParityReport

__all__ = ["InputSetResult", "ParityReport", "check_artifact", "parity_record", "record_result"]
