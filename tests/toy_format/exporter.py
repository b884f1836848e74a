"""The toy format's exporter, options and bench target."""

from __future__ import annotations

from dataclasses import dataclass

from casvit_deploy.artifacts.details import Details
from casvit_deploy.artifacts.options import FormatOptions
from casvit_deploy.errors import ExportError
from casvit_deploy.export.base import ExportJob, ExportSettings, FormatOutput
from casvit_deploy.runtime.base import RunnerOptions


@dataclass(frozen=True)
class ToyOptions(FormatOptions):
    pass


class ToyExporter:
    @staticmethod
    def check(settings: ExportSettings) -> None:
        """Every request the table lets through can be built."""

    def export(self, job: ExportJob) -> FormatOutput:
        import torch

        from casvit_deploy.export.graph import export_program

        program = export_program(job.model, job.batch, job.resolution, job.dynamic_batch)
        torch.export.save(program, job.artifact)
        check = job.check(job.artifact, program)
        if check.failures:
            raise ExportError(f"toy output differs from eager PyTorch: {check.failures[0]}")
        return FormatOutput(program, [job.input_spec()], job.output_specs(), Details(load_check=check.to_dict()))


class ToyTarget:
    name = "toy"
    summary = "the toy format, run by torch"

    def unavailable(self, device):
        return None

    def export_options(self, precision, form):
        return ToyOptions()

    def runner_options(self, threads, device):
        return RunnerOptions(threads=threads)

    def accepts(self, options) -> bool:
        return True
