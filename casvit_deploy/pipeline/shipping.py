"""The export pipeline: a checked request (pipeline/request.py) loaded, exported format by
format, gated by parity and published, its outcomes returned in memory.

Every check that needs the model runs for every format before any is exported (what the
model refuses, an artifact already at a format's destination), and bad input found later
(e.g. a calibration image that does not decode) stops the run: both raise, as for one
format. A format whose export or parity gate fails (exit code 1) is recorded and the others
still run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from casvit_deploy.errors import CasvitError, ParityFailure
from casvit_deploy.model.loading import LoadedModel
from casvit_deploy.pipeline.export import ExportResult, check_model, export_checked
from casvit_deploy.pipeline.gate import parity_gate
from casvit_deploy.pipeline.naming import artifact_name, default_out_dir
from casvit_deploy.pipeline.request import ExportRequest, Plan, Planned, plan
from casvit_deploy.pipeline.staging import refuse_overwrite
from casvit_deploy.settings import Resolution

Progress = Callable[[str], None]


@dataclass
class Outcome:
    """One format's result: the published artifact, the error that stopped it (exit code 1),
    or why `--format all` left it out (it cannot build the request, or is not installed)."""

    format: str
    result: ExportResult | None = None
    error: CasvitError | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

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

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


@dataclass(frozen=True)
class _Destination:
    """Where one planned format's artifact goes."""

    item: Planned
    folder: Path
    resolution: Resolution


def _destination(loaded: LoadedModel, item: Planned, checked: Plan) -> _Destination:
    """`item`'s folder, checked against the model and, without --force, refused when its
    artifact is already there (UsageError)."""
    request = checked.request
    check_model(loaded, item.settings, item.format)
    resolution = loaded.input_resolution(checked.resolution)
    folder = request.out or default_out_dir(loaded.variant, resolution, item.settings.precision, request.form,
                                            loaded.is_backbone)
    name = artifact_name(item.format, loaded.variant, resolution, item.settings, request.form, loaded.is_backbone)
    refuse_overwrite(Path(folder) / name, request.force)
    return _Destination(item, Path(folder), resolution)


def _export(loaded: LoadedModel, where: _Destination, checked: Plan, progress: Progress) -> ExportResult:
    request, item = checked.request, where.item

    def stage(text: str) -> None:
        progress(f"{item.format.name}: {text}")

    gate = parity_gate(loaded, request.check, lambda text: stage(f"parity {text}"))
    return export_checked(loaded, item.format, where.folder, item.settings, where.resolution, request.form,
                          force=request.force, progress=stage, gate=gate)


def ship(request: ExportRequest | Plan, progress: Progress = lambda text: None,
         loaded: LoadedModel | None = None) -> Shipped:
    """Check `request` (unless it is a Plan already), load its model (unless `loaded` is
    given), check every format against it, and export every format; `progress` is told each
    stage. Raises a CasvitError for bad input (exit code 2) found at any point."""
    checked = request if isinstance(request, Plan) else plan(request)
    if loaded is None:
        from casvit_deploy.model.loading import load_model

        progress("load model")
        r = checked.request
        loaded = load_model(r.checkpoint, r.variant, r.ema, backbone=r.backbone)
    destinations = {item.format.name: _destination(loaded, item, checked)
                    for item in checked.formats if item.settings is not None}
    shipped = Shipped(loaded)
    for item in checked.formats:
        name = item.format.name
        if item.skipped is not None:
            shipped.outcomes.append(Outcome(name, skipped=item.skipped))
            continue
        if item.refused is not None:
            shipped.outcomes.append(Outcome(name, skipped=str(item.refused)))
            continue
        try:
            shipped.outcomes.append(Outcome(name, _export(loaded, destinations[name], checked, progress)))
        except CasvitError as err:
            if err.exit_code != 1:  # bad input: the whole run stops, as it would for one format
                raise
            shipped.outcomes.append(Outcome(name, error=err))
    return shipped
