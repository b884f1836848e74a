"""Parity results as dataclasses, and their plain-data form for JSON and manifests."""

from __future__ import annotations

from dataclasses import dataclass, field

from casvit_deploy.numerics import OutputMetrics, Thresholds
from casvit_deploy.numerics.localization import Localization
from casvit_deploy.parity.integrity import Integrity


@dataclass
class InputSetResult:
    name: str
    sources: list[str]
    outputs: list[OutputMetrics] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "samples": len(self.sources), "sources": self.sources,
                "outputs": [m.to_dict() for m in self.outputs], "failures": self.failures}


@dataclass
class ParityReport:
    """Everything one artifact's parity check found. `passed` only if the artifact is the
    one its manifest describes (or `--allow-modified`) and no output failed."""

    artifact: str
    format: str
    engine: str
    reference: str
    precision: str
    weights: str
    thresholds: Thresholds
    input_sets: list[InputSetResult] = field(default_factory=list)
    localization: Localization | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    integrity: Integrity | None = None

    @property
    def sha256(self) -> str | None:
        """The sha256 of the bytes checked."""
        return self.integrity.sha256 if self.integrity else None

    @property
    def failures(self) -> list[str]:
        modified = [f"artifact: {msg}" for msg in (self.integrity.failures if self.integrity else [])]
        return modified + [f"{s.name}: {msg}" for s in self.input_sets for msg in s.failures]

    @property
    def passed(self) -> bool:
        return bool(self.input_sets) and not self.failures

    def divergence(self) -> str:
        """Where the artifact diverges, in words: the first divergent block, or why none is
        named (only the final output diverges, or the blocks could not be compared)."""
        loc = self.localization
        if loc is None:
            return "not localized"
        if loc.first_divergent:
            return f"first divergent block {loc.first_divergent}"
        compared = any(b.status == "ok" for b in loc.blocks)
        if loc.method.startswith("weight audit") or not compared:
            return f"no divergent block found: {loc.note or 'no block could be compared'}"
        outputs = ", ".join(dict.fromkeys(m.name for s in self.input_sets for m in s.outputs)) or "output"
        t = self.thresholds
        limit = (f"--block-rtol {t.block_rtol:g}" if t.block_rtol is not None
                 else f"the block SQNR minimum of {t.block_min_sqnr_db:g} dB")
        return f"every block is within {limit}: only the final output (head -> {outputs}) diverges"

    def to_dict(self) -> dict:
        return {
            "artifact": self.artifact, "format": self.format, "engine": self.engine,
            "reference": self.reference, "precision": self.precision, "weights": self.weights,
            "status": "pass" if self.passed else "fail", "passed": self.passed,
            "thresholds": self.thresholds.to_dict(),
            "integrity": self.integrity.to_dict() if self.integrity else None,
            "input_sets": [s.to_dict() for s in self.input_sets],
            "failures": self.failures,
            "localization": self.localization.to_dict() | {"where": self.divergence()} if self.localization else None,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }

    def summary(self) -> dict:
        """The compact form recorded in the artifact's manifest."""
        data = self.to_dict()
        for s in data["input_sets"]:
            s.pop("sources")
        loc = self.localization
        data["localization"] = None if loc is None else {
            "engine": loc.engine, "first_divergent": loc.first_divergent, "where": self.divergence(), "note": loc.note}
        return data
