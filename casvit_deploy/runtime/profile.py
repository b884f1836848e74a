"""Where an artifact's time goes: per op kind, the number of ops and their time per run,
as a runtime's own profiler reports it (ExecuTorch's event tracer, ONNX Runtime's
profiler). What the ops do not cover (dispatch between ops, delegate entry) is its own row."""

from __future__ import annotations

from dataclasses import dataclass, field

UNTRACED = "untraced time"


@dataclass
class OpProfile:
    """`total_ms`: one run as the profiler times it; `ops`: op kind -> (count, ms per run)."""

    engine: str
    total_ms: float
    ops: dict[str, tuple[int, float]] = field(default_factory=dict)
    note: str = ""

    def rows(self) -> list[tuple[str, int, float, float]]:
        """(op kind, count, ms, share of total) slowest first, then the untraced time."""
        covered = sum(ms for _, ms in self.ops.values())
        rows = sorted(((k, n, ms) for k, (n, ms) in self.ops.items()), key=lambda row: -row[2])
        rows.append((UNTRACED, 0, max(self.total_ms - covered, 0.0)))
        return [(kind, count, ms, ms / self.total_ms if self.total_ms else 0.0) for kind, count, ms in rows]

    def to_dict(self) -> dict:
        return {"engine": self.engine, "total_ms": self.total_ms, "note": self.note,
                "ops": [{"kind": k, "count": n, "ms": ms, "share": share} for k, n, ms, share in self.rows()]}
