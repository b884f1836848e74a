"""`check_artifact`: one artifact against the eager PyTorch model it was exported from."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path

import numpy as np

from casvit_deploy.artifacts.files import artifact_sha256
from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.artifacts.records import ParityRecord, ParityStatus
from casvit_deploy.errors import CasvitError
from casvit_deploy.formats import format_for_path
from casvit_deploy.model.loading import LoadedModel
from casvit_deploy.numerics import ThresholdOverrides, defaults_for, judge
from casvit_deploy.parity.execute import run_all
from casvit_deploy.parity.inputs import InputSet, build_input_sets
from casvit_deploy.parity.integrity import check_integrity
from casvit_deploy.parity.localize import localize
from casvit_deploy.parity.reference import reference_model
from casvit_deploy.parity.report import InputSetResult, ParityReport
from casvit_deploy.runtime.base import RunnerOptions
from casvit_deploy.runtime.eager import EagerRunner
from casvit_deploy.settings import InputKind
from casvit_deploy.store import manifests
from casvit_deploy.store.runners import open_runner


def _check_set(runner, reference: EagerRunner, inputs: InputSet, batch, thresholds) -> tuple[InputSetResult, dict]:
    ref = reference.run(inputs.images)
    out = run_all(runner, inputs.images, batch)
    metrics, failures = judge(out, ref, thresholds)
    return InputSetResult(inputs.name, inputs.sources, metrics, failures), {"ref": ref, "out": out,
                                                                          "images": inputs.images}


def _worst_sample(values: dict) -> int:
    """Index of the sample whose first common output differs most from the reference."""
    name = next((n for n in values["ref"] if n in values["out"]), None)
    if name is None or values["out"][name].shape != values["ref"][name].shape:
        return 0
    err = np.abs(values["out"][name].astype(np.float64) - values["ref"][name])
    err = np.where(np.isfinite(err), err, np.inf)
    return int(np.argmax(err.reshape(len(err), -1).max(axis=1)))


def check_artifact(artifact: Path, loaded: LoadedModel | None = None, *, checkpoint: Path | None = None,
                   inputs: InputKind = InputKind.BOTH, images_dir: Path | None = None, samples: int | None = None,
                   per_block: bool = False, engine: Enum | None = None, record: bool = True,
                   overrides: ThresholdOverrides = ThresholdOverrides(), allow_modified: bool = False,
                   report_as: Path | None = None, progress: Callable[[str], None] | None = None,
                   manifest: Manifest | None = None) -> ParityReport:
    """Run the artifact and its reference on the same inputs and judge every output.

    First the artifact must be the one its manifest describes (sha256, and inputs and
    outputs read from the artifact itself); if not, the check fails without comparing
    numbers, unless `allow_modified` (then the artifact is checked as it is). The reference
    is `loaded`, else rebuilt from the manifest (`checkpoint` overrides the recorded path;
    its sha256 must match). Localization runs with `per_block` and whenever a check fails.
    `engine` chooses what executes the artifact where its format offers a choice (CoreML).
    With `record`, the result is added to the manifest's parity records (see `record_result`).
    `report_as` names the artifact in the report (a staged artifact by its final path).
    `progress` is told each stage (reference, inputs, each input set, localization).
    `manifest` is the artifact's, when the caller holds it (the export gate); else it is read.
    """
    started, artifact = time.perf_counter(), Path(artifact)
    progress = progress or (lambda stage: None)
    fmt = format_for_path(artifact)
    manifest = manifest or manifests.load(artifact)
    limits = overrides.apply(defaults_for(manifest.judged_as))
    progress("reference model")
    loaded = reference_model(manifest, artifact, checkpoint, loaded)
    reference = EagerRunner(loaded.model, output_names=manifest.reference_outputs, head=manifest.head)
    checked_sha256 = artifact_sha256(artifact)
    options = RunnerOptions(engine=engine, preprocessing=manifest.preprocessing,
                            output_names=tuple(manifest.output_names))
    with open_runner(artifact, options) as runner:
        report = ParityReport(str(report_as or artifact), fmt.name, runner.description, reference.description,
                              manifest.precision.value, loaded.weights, limits)
        report.integrity = check_integrity(manifest, checked_sha256, runner.signature(), allow_modified)
        if report.integrity.failures:
            report.notes.append("outputs not compared: the artifact is not the one its manifest describes "
                                "(--allow-modified checks it as it is)")
        else:
            progress("inputs")
            _compare(report, runner, reference, loaded, manifest, fmt, artifact, per_block,
                     build_input_sets(inputs, manifest.resolution, samples, images_dir,
                                      preprocessing=manifest.preprocessing), progress)
    report.seconds = time.perf_counter() - started
    if record:
        record_result(artifact, report, manifest.sha256)
    return report


def _compare(report: ParityReport, runner, reference, loaded, manifest: Manifest, fmt, artifact: Path,
             per_block: bool, sets: list[InputSet], progress: Callable[[str], None]) -> None:
    """Judge every input set into `report`; localize with `per_block` or on failure."""
    if report.integrity.modified:
        report.notes.append("checked as it is (--allow-modified): " + "; ".join(report.integrity.differences))
    kept = {}
    for input_set in sets:
        progress(f"{input_set.name} inputs ({len(input_set.sources)} samples)")
        result, kept[input_set.name] = _check_set(runner, reference, input_set, manifest.fixed_batch, report.thresholds)
        report.input_sets.append(result)
    if per_block or not report.passed:
        progress("per-block localization")
        report.localization = _localize(artifact, fmt, runner, reference, loaded, manifest, report, kept)


def parity_record(report: ParityReport, reason: str = "") -> ParityRecord:
    """The manifest's record of `report`, tied to the bytes it checked."""
    status = ParityStatus.PASS if report.passed else ParityStatus.FAIL
    return ParityRecord(status, report.sha256, reason=reason, report=report.summary())


def record_result(artifact: Path, report: ParityReport, export_sha256: str) -> None:
    """Add `report` to the artifact's manifest as a parity record tied to the bytes checked,
    and only while they are still the artifact's and the manifest still describes the same
    export (`export_sha256`). An artifact that is not the one its manifest describes gets no
    record (unless checked with --allow-modified, which the record says). What stops a
    record is noted in the report."""
    integrity = report.integrity
    if integrity is not None and integrity.failures:
        report.notes.append("result not recorded in the manifest: it describes other bytes than those checked")
        return
    reason = ("checked with --allow-modified: " + "; ".join(integrity.differences)
              if integrity is not None and integrity.modified else "")
    record = parity_record(report, reason)
    try:
        manifests.append_parity(artifact, record, export_sha256)
    except CasvitError as err:
        report.notes.append(f"result not recorded in the manifest: {err}")
    except OSError as err:
        report.notes.append(f"result not recorded in the manifest: {err.strerror or err}")


def _localize(artifact, fmt, runner, reference, loaded, manifest: Manifest, report: ParityReport, kept: dict):
    """Localize on the worst sample of the first failing input set (else the last set): from
    block outputs read inside the artifact, or by the format's own localization where its
    runtime hides them (e.g. ExecuTorch's delegate)."""
    chosen = ([s for s in report.input_sets if s.failures] or report.input_sets[-1:])[0]
    index = _worst_sample(kept[chosen.name])
    sample = kept[chosen.name]["images"][index:index + 1]
    sample = np.repeat(sample, manifest.fixed_batch or 1, axis=0)
    if fmt.localize is not None:
        return fmt.localize(artifact, loaded, manifest, runner, reference, sample, report.thresholds, chosen.name,
                            chosen.sources[index])
    return localize(fmt.name, runner, reference, sample, manifest.block_outputs,
                    report.thresholds, chosen.name, chosen.sources[index])
