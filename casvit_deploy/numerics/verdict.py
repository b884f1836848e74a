"""Turning metrics into failures. Every failure is collected; none stops the others."""

from __future__ import annotations

import numpy as np

from casvit_deploy.numerics.metrics import OutputMetrics, compare, is_label
from casvit_deploy.numerics.thresholds import Thresholds


def structural_failures(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> list[str]:
    """Missing or extra output names, and shape or dtype mismatches."""
    failures = [f"output {name!r} missing (artifact has {sorted(outputs)})"
                for name in reference if name not in outputs]
    failures += [f"unexpected output {name!r}" for name in outputs if name not in reference]
    for name in reference.keys() & outputs.keys():
        out, ref = outputs[name], reference[name]
        if out.shape != ref.shape:
            failures.append(f"output {name!r} has shape {list(out.shape)}, reference {list(ref.shape)}")
        labels = is_label(ref)
        if not (is_label(out) if labels else np.issubdtype(out.dtype, np.floating)):
            expected = "integer class labels" if labels else "a float type"
            failures.append(f"output {name!r} has dtype {out.dtype}, expected {expected}")
    return failures


def label_failures(m: OutputMetrics, t: Thresholds) -> list[str]:
    """A label output fails when fewer labels than `min_top1` agree with the reference's."""
    if not m.top1_agreement >= t.min_top1:
        return [f"{m.name}: label agreement {m.top1_agreement:.3f} < {t.min_top1}"]
    return []


def allowed_abs(m: OutputMetrics, t: Thresholds) -> float:
    """The largest max|out - ref| output `m` may have: atol + rtol * max|ref|."""
    return t.atol + t.rtol * m.ref_max_abs


def margins(m: OutputMetrics, t: Thresholds) -> str:
    """Each measured value next to the limit it is judged by, in words."""
    if m.max_abs is None:  # class labels
        return f"label agreement {m.top1_agreement:.3f} (min {t.min_top1:g})"
    parts = []
    if t.judges_max_error:
        parts.append(f"max abs {m.max_abs:.1e} of {allowed_abs(m, t):.1e} allowed "
                     f"(atol {t.atol:g} + rtol {t.rtol:g} x max|ref| {m.ref_max_abs:.3g})")
    parts.append(f"cosine {m.cosine:.7f} (min {t.min_cosine:g})")
    if t.min_snr_db is not None:
        parts.append(f"SNR {m.snr_db:.1f} dB (min {t.min_snr_db:g})")
    if m.top1_agreement is not None:
        parts.append(f"top-1 {m.top1_agreement:.3f} (min {t.min_top1:g})")
    if t.min_top5 is not None and m.top5_overlap is not None:
        parts.append(f"top-5 {m.top5_overlap:.3f} (min {t.min_top5:g})")
    return ", ".join(parts)


def metric_failures(m: OutputMetrics, t: Thresholds) -> list[str]:
    """Every threshold that output `m` misses."""
    if m.max_abs is None:
        return label_failures(m, t)
    failures = []
    if m.nonfinite:
        failures.append(f"{m.name}: {m.nonfinite} NaN/Inf values")
    if t.judges_max_error:
        limit = allowed_abs(m, t)
        if not m.max_abs <= limit:
            failures.append(f"{m.name}: max abs error {m.max_abs:.3g} > {limit:.3g} "
                            f"(atol {t.atol:g} + rtol {t.rtol:g} x max|ref| {m.ref_max_abs:.3g})")
    if not m.cosine >= t.min_cosine:
        failures.append(f"{m.name}: cosine {m.cosine:.6f} < {t.min_cosine}")
    if t.min_snr_db is not None and not m.snr_db >= t.min_snr_db:
        failures.append(f"{m.name}: SNR {m.snr_db:.1f} dB < {t.min_snr_db:g} dB")
    if m.top1_agreement is not None and not m.top1_agreement >= t.min_top1:
        failures.append(f"{m.name}: top-1 agreement {m.top1_agreement:.3f} < {t.min_top1}")
    if t.min_top5 is not None and m.top5_overlap is not None and not m.top5_overlap >= t.min_top5:
        failures.append(f"{m.name}: top-5 overlap {m.top5_overlap:.3f} < {t.min_top5}")
    return failures


def judge(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray],
          thresholds: Thresholds) -> tuple[list[OutputMetrics], list[str]]:
    """Metrics of every output that matches the reference's name and shape, and every failure."""
    metrics, failures = [], structural_failures(outputs, reference)
    for name in reference:
        if name in outputs and outputs[name].shape == reference[name].shape:
            m = compare(name, outputs[name], reference[name])
            metrics.append(m)
            failures += metric_failures(m, thresholds)
    return metrics, failures
