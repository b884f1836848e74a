"""What every int8 exporter shares: the calibration set, the calibration method, what is
kept float and why (given, the default, or found by `--auto-keep-float`, by cosine or by a
top-1 budget on labelled images), and the manifest's quantization record.

By default the residual stream between blocks stays float (`residual-adds`): with the
adds quantized, the stream is requantized to int8 three times per block and the error of
every requantization stays in it (XS: SQNR of the logits 22.7 dB against 29.0 dB with a
float stream, benchmarks/INT8.md); the branches, where the work is, run in int8.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from casvit_deploy.artifacts.options import Int8Options
from casvit_deploy.artifacts.records import CalibrationRecord, KeptFloat, QuantizationRecord
from casvit_deploy.data.batches import run_in_batches
from casvit_deploy.data.calibration import CalibrationSet, calibration_set
from casvit_deploy.export.base import ExportJob
from casvit_deploy.export.graph import block_names, block_outputs
from casvit_deploy.export.labelled import RUN_BATCH, LabelledImages, labelled_images
from casvit_deploy.numerics import defaults_for
from casvit_deploy.quantize.search import LABELLED, Criterion, Trial, measure, search
from casvit_deploy.quantize.targets import RESIDUAL_ADDS, check_targets
from casvit_deploy.runtime.eager import EagerRunner
from casvit_deploy.settings import CalibrationMethod, Precision

DEFAULT_REASON = {RESIDUAL_ADDS: "default: the residual stream stays float (--quantize-residual quantizes it)"}


@dataclass
class Int8Plan:
    """The quantization an exporter is asked for, resolved and checked."""

    options: Int8Options
    method: CalibrationMethod
    calibration: CalibrationSet
    kept: tuple[str, ...]
    reasons: dict[str, str]
    trials: list[Trial] = field(default_factory=list)  # --auto-keep-float's, in order
    labelled: LabelledImages | None = None              # --data: the top-1 budget's images
    chosen_by: str = "not searched"                     # what ended the search

    @property
    def photographs(self) -> np.ndarray:
        """The images agreement is measured on: the calibration set's photographs."""
        return self.calibration.photographs


def plan(job: ExportJob) -> Int8Plan:
    """Resolve `job.options.int8` (None: the defaults) for the job's format."""
    options = job.options.int8 or Int8Options()
    method = job.format.calibration_method(options.calibration_method)
    default_kept = () if options.quantize_residual else (RESIDUAL_ADDS,)
    kept = check_targets(job.model, default_kept + tuple(options.keep_float))
    reasons = {t: DEFAULT_REASON.get(t, "--keep-float") if t in default_kept else "--keep-float" for t in kept}
    job.progress("calibration data")
    calibration = calibration_set(job.preprocessing, options.calibration, options.calibration_samples)
    labelled = labelled_images(job, options.data) if options.data is not None else None
    return Int8Plan(options, method, calibration, kept, reasons, labelled=labelled)


def labelled_outputs(int8: Int8Plan, logits: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    """{LABELLED: `logits` of the plan's labelled images}, for a trial's outputs; {} without them."""
    return {} if int8.labelled is None else {LABELLED: logits(int8.labelled.images)}


def module_logits(module, images: np.ndarray, batch: int | None) -> np.ndarray:
    """The logits a torch module (e.g. a PT2E-converted program) gives for `images`."""
    import torch

    with torch.no_grad():
        return run_in_batches(lambda chunk: {"logits": module(torch.from_numpy(chunk)).numpy()}, images,
                              batch)["logits"]


def reference_blocks(job: ExportJob, program, images: np.ndarray) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(block -> node name in `program`, block -> fp32 output on `images`)."""
    names = block_outputs(program, job.model)
    return names, EagerRunner(job.model).run_intermediates(images, list(names))


def choose_kept(job: ExportJob, int8: Int8Plan, evaluate: Callable[[tuple[str, ...]], dict[str, np.ndarray]],
                references: dict[str, np.ndarray]) -> tuple[str, ...]:
    """The targets to keep float: the plan's, plus with --auto-keep-float the blocks the
    search adds (recorded with their reasons). `evaluate(kept)` returns block outputs on
    the plan's photographs."""
    if not int8.options.auto_keep_float:
        return int8.kept
    order, criterion = block_names(job.model), _criterion(int8.options)
    labels = None
    if int8.labelled is not None:
        labels = int8.labelled.labels
        references = references | labelled_outputs(int8, lambda x: run_in_batches(
            EagerRunner(job.model).run, x, RUN_BATCH)["logits"])
    trials = search(lambda kept: measure(kept, evaluate(kept), references, order, labels), int8.kept, order,
                    criterion, lambda text: job.progress(f"auto-keep-float: {text}"))
    for before, after in zip(trials, trials[1:]):
        block = after.kept[-1]
        error = next(b for b in before.blocks if b.block == block)
        where = f"SQNR {error.previous_db:.1f} -> {error.sqnr_db:.1f} dB" if error.previous_db is not None \
            else f"SQNR {error.sqnr_db:.1f} dB"
        int8.reasons[block] = (f"--auto-keep-float: most error entered here ({where}); {criterion.state(before)} "
                               f"-> {criterion.state(after)} (target {criterion.target})")
    int8.trials, int8.chosen_by = trials, criterion.stopped_by(trials)
    int8.kept = trials[-1].kept
    return int8.kept


def search_pt2e(job: ExportJob, program, int8: Int8Plan, make) -> None:
    """--auto-keep-float for a PT2E format (quantizer `make(keep_float)`, quantize/pt2e.py):
    `choose_kept` tries each choice on one calibration's simulation, read block by block."""
    from casvit_deploy.quantize import pt2e
    from casvit_deploy.quantize.targets import keeps_float

    if not int8.options.auto_keep_float:
        return
    batch = None if job.dynamic_batch else job.batch
    job.progress("calibrate (search)")
    calibrated = pt2e.Calibrated(program, int8.calibration.images, batch, make)
    names, references = reference_blocks(job, program, int8.photographs)

    def evaluate(kept):
        module = calibrated.convert(keeps_float(kept))
        return pt2e.BlockProbe(module, names).outputs(int8.photographs, batch) | labelled_outputs(
            int8, lambda x: module_logits(module, x, batch))

    choose_kept(job, int8, evaluate, references)


def quantized_module(job: ExportJob, program, int8: Int8Plan, make, fold: bool = True,
                     extra: tuple[str, ...] = ()):
    """The PT2E-converted (q/dq) module of the fp32 `program`, calibrated on the plan's set
    with the format's quantizer (`make(keep_float)`), the plan's targets and `extra` float
    (run `search_pt2e` first for --auto-keep-float)."""
    from casvit_deploy.quantize import pt2e
    from casvit_deploy.quantize.targets import keeps_float

    job.progress("calibrate")
    batch = None if job.dynamic_batch else job.batch
    return pt2e.quantize(program, int8.calibration.images, batch, make, keeps_float(int8.kept + extra), fold)


def _criterion(options: Int8Options) -> Criterion:
    """Cosine by default; with a top-1 budget, the budget, and the cosine at least the parity
    gate's int8 minimum (a choice below it would not be published)."""
    if options.max_top1_drop is None:
        return Criterion(options.min_cosine)
    return Criterion(options.min_cosine, options.max_top1_drop, defaults_for(Precision.INT8).min_cosine)


def quantization_record(int8: Int8Plan, scheme: str, config: dict, check, speed: dict | None = None
                        ) -> QuantizationRecord:
    """The manifest's record; `check` is the artifact's load check (its agreement)."""
    cal = int8.calibration
    calibration = CalibrationRecord(cal.description, cal.sha256, len(cal), cal.photos, int8.method.value)
    config = config | {"auto_keep_float": int8.options.auto_keep_float, "min_cosine": int8.options.min_cosine,
                       "max_top1_drop": int8.options.max_top1_drop,
                       "labelled_data": int8.labelled.record if int8.labelled else None,
                       "chosen_by": int8.chosen_by, "search": [t.summary() for t in int8.trials]}
    kept = [KeptFloat(t, int8.reasons.get(t, "--keep-float")) for t in int8.kept]
    agreement = check.agreement | {"samples": check.samples, "set": "the calibration set's photographs"}
    return QuantizationRecord(scheme, config, calibration, kept, agreement, speed)
