"""The export gate: the parity check of a staged artifact, as the record its manifest gets.

"fail" stops the artifact from being published; "not run" (with the reason) when the check
is switched off or cannot run here (e.g. the runtime is missing), so every published
manifest says what happened to its check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from casvit_deploy.artifacts.files import artifact_sha256
from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.artifacts.records import ParityRecord, ParityStatus
from casvit_deploy.errors import CasvitError
from casvit_deploy.model.loading import LoadedModel

SKIPPED = "skipped with --no-check"


def _not_run(staged: Path, reason: str) -> ParityRecord:
    return ParityRecord(ParityStatus.NOT_RUN, artifact_sha256(staged), reason=reason)


def parity_gate(loaded: LoadedModel, check: bool = True, progress: Callable[[str], None] | None = None):
    """The gate for artifacts exported from `loaded`: (staged artifact, its manifest, final
    path) -> the parity record to add to the manifest."""
    if not check:
        return lambda staged, manifest, final: _not_run(staged, SKIPPED)

    def gate(staged: Path, manifest: Manifest, final: Path) -> ParityRecord:
        try:
            from casvit_deploy.parity import check_artifact, parity_record
        except ImportError as err:
            return _not_run(staged, f"parity checker unavailable ({err})")
        try:
            report = check_artifact(staged, loaded, manifest=manifest, record=False, report_as=final,
                                    progress=progress)
        except CasvitError as err:
            return _not_run(staged, str(err))
        if not report.passed:  # nothing is published: the record only carries the reason
            return ParityRecord(ParityStatus.FAIL, None, reason=report.failures[0])
        return parity_record(report)

    return gate
