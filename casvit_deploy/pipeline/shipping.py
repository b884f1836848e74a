"""The export pipeline: a checked request (pipeline/request.py) loaded, exported format by
format, gated by parity and published, its outcomes returned in memory.

Each format runs on its own: one that fails is recorded and the others still run (a
request for one format raises its error instead).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from casvit_deploy.errors import CasvitError, ParityFailure
from casvit_deploy.model.loading import LoadedModel
from casvit_deploy.pipeline.export import ExportResult, check_model, export_checked
from casvit_deploy.pipeline.gate import parity_gate
from casvit_deploy.pipeline.naming import default_out_dir
from casvit_deploy.pipeline.request import ExportRequest, Plan, Planned, plan

Progress = Callable[[str], None]


@dataclass
class Outcome:
    """One format's result: the published artifact, the error that stopped it, or why it
    was skipped (not installed, asked for through "all")."""

    format: str
    result: ExportResult | None = None
    error: CasvitError | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None or self.skipped is not None

    @property
    def parity_failed(self) -> bool:
        return isinstance(self.error, ParityFailure)


@dataclass
class Shipped:
    loaded: LoadedModel
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


def _export(loaded: LoadedModel, item: Planned, checked: Plan, progress: Progress) -> ExportResult:
    request = checked.request
    check_model(loaded, item.settings, item.format)
    resolution = loaded.input_resolution(checked.resolution)
    folder = request.out or default_out_dir(loaded.variant, resolution, item.settings.precision, request.form,
                                            loaded.is_backbone)

    def stage(text: str) -> None:
        progress(f"{item.format.name}: {text}")

    gate = parity_gate(loaded, request.check, lambda text: stage(f"parity {text}"))
    return export_checked(loaded, item.format, folder, item.settings, resolution, request.form, force=request.force,
                          progress=stage, gate=gate)


def ship(request: ExportRequest | Plan, progress: Progress = lambda text: None,
         loaded: LoadedModel | None = None) -> Shipped:
    """Check `request` (unless it is a Plan already), load its model (unless `loaded` is
    given), and export every format; `progress` is told each stage."""
    checked = request if isinstance(request, Plan) else plan(request)
    if loaded is None:
        from casvit_deploy.model.loading import load_model

        progress("load model")
        r = checked.request
        loaded = load_model(r.checkpoint, r.variant, r.ema, backbone=r.backbone)
    shipped = Shipped(loaded)
    alone = len(checked.formats) == 1 and checked.formats[0].skipped is None
    for item in checked.formats:
        if item.skipped is not None:
            shipped.outcomes.append(Outcome(item.format.name, skipped=item.skipped))
            continue
        if item.refused is not None:
            shipped.outcomes.append(Outcome(item.format.name, error=item.refused))
            continue
        try:
            shipped.outcomes.append(Outcome(item.format.name, _export(loaded, item, checked, progress)))
        except CasvitError as err:
            if alone and not isinstance(err, ParityFailure):
                raise
            shipped.outcomes.append(Outcome(item.format.name, error=err))
    return shipped
