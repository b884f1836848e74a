"""`check_artifact`: one artifact against the eager PyTorch model it was exported from."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from casvit_deploy.parity.execute import run_all
from casvit_deploy.parity.inputs import InputSet, build_input_sets
from casvit_deploy.parity.localize import localize
from casvit_deploy.parity.manifest import read_manifest, record_parity
from casvit_deploy.parity.metrics import compare
from casvit_deploy.parity.reference import reference_model
from casvit_deploy.parity.report import InputSetResult, ParityReport
from casvit_deploy.parity.thresholds import defaults_for
from casvit_deploy.parity.weight_audit import audit_weights
from casvit_deploy.parity.verdict import metric_failures, structural_failures
from casvit_deploy.pipeline import LoadedModel
from casvit_deploy.runtime.eager import EagerRunner
from casvit_deploy.runtime.registry import artifact_format, open_runner

THRESHOLD_NAMES = ("atol", "rtol", "min_cosine", "min_top1", "block_rtol")


def _output_names(manifest: dict) -> list[str]:
    outputs = manifest.get("outputs") or []
    names = [o["name"] for o in outputs if isinstance(o, dict) and "name" in o]
    return names or ["logits"]


def _fixed_batch(manifest: dict) -> int | None:
    """The batch every run must have, or None when the artifact takes any batch."""
    return None if manifest.get("dynamic_batch") else int(manifest.get("batch") or 1)


def _preprocessing(manifest: dict) -> dict:
    pre = manifest.get("preprocessing") or {}
    return {k: tuple(pre[k]) for k in ("mean", "std") if k in pre}


def _check_set(runner, reference: EagerRunner, inputs: InputSet, batch, thresholds) -> tuple[InputSetResult, dict]:
    ref = reference.run(inputs.images)
    out = run_all(runner, inputs.images, batch)
    result = InputSetResult(inputs.name, inputs.sources, failures=structural_failures(out, ref))
    for name in ref:
        if name in out and out[name].shape == ref[name].shape:
            metrics = compare(name, out[name], ref[name])
            result.outputs.append(metrics)
            result.failures += metric_failures(metrics, thresholds)
    return result, {"ref": ref, "out": out, "images": inputs.images}


def _worst_sample(values: dict) -> int:
    """Index of the sample whose first common output differs most from the reference."""
    name = next((n for n in values["ref"] if n in values["out"]), None)
    if name is None or values["out"][name].shape != values["ref"][name].shape:
        return 0
    err = np.abs(values["out"][name].astype(np.float64) - values["ref"][name])
    err = np.where(np.isfinite(err), err, np.inf)
    return int(np.argmax(err.reshape(len(err), -1).max(axis=1)))


def check_artifact(artifact: Path, loaded: LoadedModel | None = None, *, checkpoint: Path | None = None,
                   inputs: str = "both", images_dir: Path | None = None, samples: int | None = None,
                   per_block: bool = False, engine: str | None = None, record: bool = True,
                   **thresholds: float | None) -> ParityReport:
    """Run the artifact and its reference on the same inputs and judge every output.

    The reference is `loaded`, else rebuilt from the manifest (`checkpoint` overrides the
    manifest's path; its sha256 must match). Localization runs with `per_block` and
    whenever a check fails. With `record`, the result goes into the manifest's "parity".
    """
    started, artifact = time.perf_counter(), Path(artifact)
    fmt = artifact_format(artifact)
    manifest = read_manifest(artifact)
    unknown = set(thresholds) - set(THRESHOLD_NAMES)
    if unknown:
        raise TypeError(f"unknown thresholds {sorted(unknown)}")
    limits = defaults_for(manifest.get("precision")).with_overrides(**thresholds)
    loaded = reference_model(artifact, manifest, checkpoint, loaded)
    reference = EagerRunner(loaded.model, output_names=_output_names(manifest))
    runner = open_runner(artifact, engine)
    resolution = int(manifest.get("resolution") or loaded.native_resolution)
    report = ParityReport(str(artifact), fmt, runner.engine, reference.engine,
                          manifest.get("precision", "fp32"), loaded.weights, limits)
    _note_modified(artifact, manifest, report)
    kept = {}
    for inputs_set in build_input_sets(inputs, resolution, samples, images_dir, **_preprocessing(manifest)):
        result, kept[inputs_set.name] = _check_set(runner, reference, inputs_set, _fixed_batch(manifest), limits)
        report.input_sets.append(result)
    if per_block or not report.passed:
        report.localization = _localize(artifact, fmt, runner, reference, loaded, manifest, report, kept)
    report.seconds = time.perf_counter() - started
    if record:
        try:
            record_parity(artifact, report.summary())
        except OSError as err:
            report.notes.append(f"result not recorded in the manifest: {err.strerror or err}")
    return report


def _note_modified(artifact: Path, manifest: dict, report: ParityReport) -> None:
    """Note (not a failure by itself) when the artifact's bytes changed since export."""
    from casvit_deploy.export.manifest import sha256_tree

    recorded = manifest.get("sha256")
    if recorded and sha256_tree(artifact) != recorded:
        report.notes.append("artifact differs from the sha256 in its manifest: modified after export")


def _localize(artifact, fmt, runner, reference, loaded, manifest, report: ParityReport, kept: dict):
    """Localize on the worst sample of the first failing input set (else the last set).
    ExecuTorch hides activations inside its delegate, so its weights are audited instead."""
    chosen = ([s for s in report.input_sets if s.failures] or report.input_sets[-1:])[0]
    index = _worst_sample(kept[chosen.name])
    if fmt == "executorch":
        return audit_weights(artifact, loaded, manifest, runner.engine, chosen.name, chosen.sources[index])
    sample = kept[chosen.name]["images"][index:index + 1]
    sample = np.repeat(sample, _fixed_batch(manifest) or 1, axis=0)
    return localize(fmt, runner, reference, sample, manifest.get("block_outputs") or {},
                    report.thresholds.block_rtol, chosen.name, chosen.sources[index])
