"""The parity hook run after an export: the parity package's verdict, recorded in the manifest."""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.errors import CasvitError
from casvit_deploy.export.manifest import update_manifest


def check_parity(artifact: Path, loaded) -> dict:
    """{"status": "pass"|"fail"|"not run", ...}; check_artifact records its own result,
    and a check that cannot run is recorded as "not run" with the reason."""
    try:
        from casvit_deploy.parity import check_artifact
    except ImportError as err:
        return _not_run(artifact, f"parity checker unavailable ({err})")
    try:
        report = check_artifact(Path(artifact), loaded)
    except CasvitError as err:
        return _not_run(artifact, str(err))
    return {"status": "pass" if report.passed else "fail", "passed": report.passed, "report": report.to_dict()}


def _not_run(artifact: Path, reason: str) -> dict:
    result = {"status": "not run", "reason": reason}
    update_manifest(artifact, parity=result)
    return result
