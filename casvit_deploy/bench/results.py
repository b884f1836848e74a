"""Benchmark results and the report that carries them with the machine's description."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

from casvit_deploy.bench.stats import LatencyStats, Noise, noise
from casvit_deploy.settings import Resolution

SCHEMA = "casvit-bench/1"
KEY_FIELDS = ("model", "form", "backend", "device", "precision", "batch", "resolution", "channels_last")
# What `BenchResult.to_dict` adds to the fields (recomputed on loading), with their types.
DERIVED_FIELDS = {"iqr_ms": "float | None", "iqr_pct": "float | None", "round_spread_pct": "float | None",
                  "noisy": "bool"}


@dataclass
class BenchResult:
    """One measured case. Latencies are per call (one batch); throughput is images/s."""

    model: str
    variant: str | None
    weights: str
    form: str
    passes: list[str]
    backend: str
    engine: str
    device: str
    precision: str
    batch: int
    resolution: Resolution
    channels_last: bool
    threads: int | None
    stats: LatencyStats
    round_p50_ms: list[float]
    load_s: float
    first_inference_ms: float
    peak_rss_mb: float
    cuda_peak_mb: float | None = None
    artifact: str | None = None
    artifact_mb: float | None = None
    export_s: float | None = None
    gflop_per_image: float | None = None
    achieved_gflops: float | None = None
    gemm_fraction: float | None = None
    speedup_vs_eager: float | None = None
    speedup_vs_fp32: float | None = None   # same backend's fp32 p50 / this p50 (int8 rows)
    size_vs_fp32: float | None = None      # artifact size / the same backend's fp32 artifact size
    agreement: dict | None = None          # int8: cosine, snr_db, top1, top5 vs fp32 eager (manifest)
    npu_only: bool = False                 # int8 exported for NPU execution providers (slower on this CPU EP)

    def __post_init__(self):
        self.resolution = Resolution.parse(self.resolution, "resolution")

    def key(self) -> tuple:
        return tuple(getattr(self, f) for f in KEY_FIELDS)

    @property
    def noise(self) -> Noise:
        return noise(self.stats, self.round_p50_ms)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(out.pop("stats"))
        out.update(iqr_ms=self.stats.iqr_ms, iqr_pct=self.noise.iqr_pct,
                   round_spread_pct=self.noise.round_spread_pct, noisy=bool(self.noise.reasons()))
        return out

    @classmethod
    def from_dict(cls, data: dict) -> BenchResult:
        stat_names = LatencyStats.__dataclass_fields__
        stats = LatencyStats(**{k: data[k] for k in stat_names if k in data})
        rest = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "stats"}
        return cls(stats=stats, **rest | {"resolution": Resolution.from_record(data["resolution"])})


@dataclass
class Skipped:
    backend: str
    device: str
    reason: str
    model: str | None = None  # None: the backend as a whole


@dataclass
class BenchReport:
    environment: dict
    config: dict
    gemm: dict
    results: list[BenchResult] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Skipped] = field(default_factory=list)
    profiles: list[dict] = field(default_factory=list)  # --profile: per op kind, each artifact
    created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "created": self.created, "environment": self.environment,
                "config": self.config, "gemm": self.gemm,
                "results": [r.to_dict() for r in self.results],
                "skipped": [asdict(s) for s in self.skipped], "failed": [asdict(s) for s in self.failed],
                "profiles": self.profiles}

    @classmethod
    def from_dict(cls, data: dict) -> BenchReport:
        return cls(data["environment"], data.get("config", {}), data.get("gemm", {}),
                   [BenchResult.from_dict(r) for r in data["results"]],
                   [Skipped(**s) for s in data.get("skipped", [])], [Skipped(**s) for s in data.get("failed", [])],
                   data.get("profiles", []), data.get("created", ""))


def baseline_for(result: BenchResult, results: list[BenchResult]) -> BenchResult | None:
    """The eager fp32 row for the same model, form, device, batch and resolution
    (contiguous layout preferred): what `speedup_vs_eager` divides by."""
    candidates = [r for r in results if r.backend == "eager" and r.precision == "fp32"
                  and (r.model, r.form, r.device, r.batch, r.resolution)
                  == (result.model, result.form, result.device, result.batch, result.resolution)]
    candidates.sort(key=lambda r: r.channels_last)
    return candidates[0] if candidates else None


def fp32_for(result: BenchResult, results: list[BenchResult]) -> BenchResult | None:
    """The fp32 row of the same backend, model, form, device, batch and resolution."""
    if result.precision == "fp32":
        return None
    same = ("model", "form", "backend", "device", "batch", "resolution", "channels_last")
    return next((r for r in results if r.precision == "fp32"
                 and all(getattr(r, k) == getattr(result, k) for k in same)), None)


def fill_derived(results: list[BenchResult], gemm_gflops: dict[str, float]) -> None:
    """Achieved GFLOP/s, its fraction of the same-run GEMM, speed-up vs eager and (for other
    precisions) speed-up and size vs the same backend's fp32, in place."""
    for r in results:
        if r.gflop_per_image:
            r.achieved_gflops = r.gflop_per_image * r.batch / (r.stats.p50_ms / 1e3)
            gemm = gemm_gflops.get(r.device)
            r.gemm_fraction = r.achieved_gflops / gemm if gemm else None
        base = baseline_for(r, results)
        r.speedup_vs_eager = base.stats.p50_ms / r.stats.p50_ms if base else None
        fp32 = fp32_for(r, results)
        if fp32 is not None:
            r.speedup_vs_fp32 = fp32.stats.p50_ms / r.stats.p50_ms
            r.size_vs_fp32 = r.artifact_mb / fp32.artifact_mb if r.artifact_mb and fp32.artifact_mb else None
