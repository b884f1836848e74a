"""Is the artifact the one its manifest describes? The same bytes (sha256) and the same
inputs and outputs (names, shapes, dtypes, read from the artifact itself).

A difference fails the parity gate: the manifest's numbers, checkpoint and thresholds are
about other bytes. With `allowed` (`--allow-modified`, for artifacts post-processed on
purpose, e.g. simplified with onnxsim) the artifact is checked as it is instead, and the
difference is recorded with the result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.artifacts.records import Signature


@dataclass
class Integrity:
    expected_sha256: str   # the manifest's: the bytes the export wrote
    sha256: str            # the bytes checked
    differences: list[str] = field(default_factory=list)
    allowed: bool = False  # --allow-modified

    @property
    def modified(self) -> bool:
        return bool(self.differences)

    @property
    def failures(self) -> list[str]:
        """The differences that fail the gate (none when modification is allowed)."""
        return [] if self.allowed else self.differences

    def to_dict(self) -> dict:
        return asdict(self) | {"modified": self.modified}


def check_integrity(manifest: Manifest, sha256: str, found: Signature, allowed: bool = False) -> Integrity:
    """Every way the artifact (its `sha256`, its own signature `found`) differs from `manifest`."""
    differences = []
    if sha256 != manifest.sha256:
        differences.append(f"sha256 {sha256[:12]}... is not the manifest's {manifest.sha256[:12]}...: "
                           "the artifact was modified after export")
    differences += manifest.signature.differences(found)
    return Integrity(manifest.sha256, sha256, differences, allowed)
