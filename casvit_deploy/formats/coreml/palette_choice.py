"""`--palettize auto`: the fewest bits whose palettized package passes.

The candidates, fewest bits first, are those the deployment target offers (4 bits from
iOS18, then 6 and 8). Each is compressed from the same converted program, saved in a
temporary folder beside the artifact and read back through the runner, as the package
would be: the first that passes the load check (agreement with fp32 on the calibration
photographs, judged as the parity gate judges lossy weights) and, with `--data`, loses at
most `--max-top1-drop` percentage points of top-1 against fp32 on the labelled images, is
chosen. When none does, the last (8 bits) is kept and the gate refuses it as it would
`--palettize 8`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from casvit_deploy.errors import UsageError
from casvit_deploy.export.base import ExportJob
from casvit_deploy.export.labelled import LabelledImages, scores
from casvit_deploy.formats.coreml.compress import compress
from casvit_deploy.formats.coreml.compression import check_target, palettized
from casvit_deploy.formats.coreml.mil.loader import program_of
from casvit_deploy.formats.coreml.options import PALETTE_BITS
from casvit_deploy.formats.coreml.runner import package_scores
from casvit_deploy.quantize.search import Labelled
from casvit_deploy.runtime.eager import EagerRunner

AGREEMENT = "the load check: agreement with fp32 on the calibration photographs, judged as lossy weights"


@dataclass
class PaletteTrial:
    bits: int
    cosine: float | None
    failures: list[str]
    labelled: Labelled | None = None

    def passes(self, budget: float | None) -> bool:
        return not self.failures and (budget is None or self.labelled.drop.drop_pp <= budget)

    def state(self) -> str:
        text = f"cosine {self.cosine:.5f}" if self.cosine is not None else "no cosine"
        text += "" if not self.failures else f", fails the load check ({self.failures[0]})"
        return text if self.labelled is None else f"top-1 drop {self.labelled.drop.drop_pp:.2f} pp, {text}"

    def summary(self) -> dict:
        return {"bits": self.bits, "cosine": self.cosine, "load_check_failures": self.failures} | (
            self.labelled.summary() if self.labelled else {})


@dataclass
class PaletteChoice:
    mlmodel: object        # the chosen compressed model
    trials: list[PaletteTrial]
    budget: float | None
    labelled: LabelledImages | None

    @property
    def bits(self) -> int:
        return self.trials[-1].bits

    @property
    def chosen_by(self) -> str:
        if not self.trials[-1].passes(self.budget):
            return "no candidate left (the last, 8 bits, is kept for the gate to judge)"
        return "agreement (load check)" if self.budget is None else "top-1 drop on labelled data and agreement"

    def record(self) -> dict:
        """The manifest's `details.compression.choice`."""
        return {"palettize": "auto", "bits": self.bits, "chosen_by": self.chosen_by, "agreement": AGREEMENT,
                "max_top1_drop": self.budget, "labelled_data": self.labelled.record if self.labelled else None,
                "search": [t.summary() for t in self.trials]}


def candidates(deployment_target: str) -> list[int]:
    """The palette sizes `deployment_target` runs, fewest bits first."""
    offered = []
    for bits in sorted(PALETTE_BITS):
        try:
            check_target(palettized(bits), deployment_target)
        except UsageError:
            continue
        offered.append(bits)
    return offered


def choose_palette(job: ExportJob, mlmodel, program, head, photographs: np.ndarray,
                   labelled: LabelledImages | None, budget: float | None) -> PaletteChoice:
    """The compressed model of the fewest bits that pass (module doc), with every trial."""
    reference = scores(EagerRunner(job.model).run, labelled.images) if labelled is not None else None
    trials, chosen = [], None
    folder = Path(tempfile.mkdtemp(prefix="palette-", dir=job.artifact.parent))
    try:
        for bits in candidates(job.options.deployment_target):
            job.progress(f"palettize auto: {bits} bits")
            chosen = compress(mlmodel, palettized(bits), job.model, program_of, None, job.batch)
            path = folder / f"{bits}bit.mlpackage"
            chosen.save(str(path))
            check = job.check(path, program, head, images=photographs, lossy=True)
            trial = PaletteTrial(bits, check.agreement.get("cosine"), list(check.failures))
            if labelled is not None:
                trial.labelled = labelled.judge(package_scores(path, job.preprocessing, labelled.images, job.batch), reference)
            trials.append(trial)
            job.progress(f"palettize auto: {bits} bits: {trial.state()}")
            if trial.passes(budget):
                break
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return PaletteChoice(chosen, trials, budget, labelled)

