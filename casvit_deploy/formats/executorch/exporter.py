"""ExecuTorch export: `.pte` lowered with the XNNPACK (or CoreML) partitioner, or with none
("portable": every op on ExecuTorch's reference kernels, a slow baseline for comparison).
int8 programs are quantized first with PT2E and XNNPACK's quantizer (pt2e.py).

Delegation coverage is measured on the lowered graph; an artifact that leaves compute
ops on portable kernels is refused unless the `allow_portable` option is set. The
written program passes the load check (run through its runner against eager) before it
is accepted (not for the CoreML delegate off macOS: it lowers on Linux, but only Apple
builds of the runtime can load it, so the manifest says the check was not run).
"""

from __future__ import annotations

import sys

from casvit_deploy.atomic import temp_files_in
from casvit_deploy.errors import ExportError, UsageError, first_line
from casvit_deploy.export.base import ExportJob, ExportSettings, FormatOutput, LoadCheck
from casvit_deploy.formats.executorch.details import ExecuTorchDetails
from casvit_deploy.formats.executorch.options import Delegate, ExecuTorchOptions
from casvit_deploy.settings import Precision

BOOKKEEPING = ("getitem", "alloc", "sym_size")  # not compute: never counted as undelegated


def _partitioners(delegate: Delegate) -> list:
    if delegate is Delegate.XNNPACK:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        return [XnnpackPartitioner()]
    if delegate is Delegate.COREML:
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner

        return [CoreMLPartitioner()]
    return []


def _lower(program, delegate: Delegate):
    from executorch.exir import to_edge_transform_and_lower

    try:
        return to_edge_transform_and_lower(program, partitioner=_partitioners(delegate))
    except (ImportError, RuntimeError, OSError) as err:
        if delegate is not Delegate.COREML:
            raise
        raise ExportError(f"the ExecuTorch CoreML delegate does not lower on this platform ({first_line(err)}); "
                          "use --delegate xnnpack, or export on macOS") from None


def coverage(edge) -> dict:
    """Nodes delegated vs left on portable kernels, per operator (bookkeeping excluded)."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge.exported_program().graph_module)
    portable = {op: b.non_delegated for op, b in info.delegation_by_operator.items()
                if b.non_delegated and not op.startswith(BOOKKEEPING)}
    return {"delegated_subgraphs": info.num_delegated_subgraphs, "delegated_nodes": info.num_delegated_nodes,
            "portable_nodes": sum(portable.values()), "portable_ops": portable}


def runtime_facts(path) -> dict:
    """The `.pte`'s flatbuffer file identifier (bytes 4-8) and the executorch release that wrote it."""
    from importlib.metadata import version

    with open(path, "rb") as f:
        identifier = f.read(8)[4:].decode("ascii", "replace")
    return {"pte_format": identifier, "written_by_executorch": version("executorch")}


def _refuse_portable(report: dict, delegate: Delegate) -> None:
    ops = ", ".join(f"{op} x{n}" for op, n in sorted(report["portable_ops"].items()))
    raise ExportError(f"{report['portable_nodes']} op(s) not delegated to {delegate.value} and left on portable "
                      f"kernels ({ops}); pass --allow-portable to accept a partly delegated program")


def _check(job: ExportJob, program, delegate: Delegate, images=None):
    """The load check, except for the CoreML delegate off Apple platforms (no runtime here)."""
    if delegate is Delegate.COREML and sys.platform != "darwin":
        return LoadCheck.not_run("the CoreML delegate's runtime exists only on Apple platforms")
    return job.check(job.artifact, program, images=images)


def _quantized_program(job: ExportJob, program, plan):
    """The int8 program to lower: PT2E-quantized with what the plan (an export.int8 Int8Plan,
    and its search) keeps float."""
    from casvit_deploy.export import int8
    from casvit_deploy.export.graph import export_program
    from casvit_deploy.formats.executorch import pt2e
    from casvit_deploy.quantize.targets import keeps_float

    batch = None if job.dynamic_batch else job.batch
    images = plan.calibration.images
    if plan.options.auto_keep_float:
        job.progress("calibrate (search)")
        calibrated = pt2e.Calibrated(program, images, batch, plan.method)
        names, references = int8.reference_blocks(job, program, plan.photographs)
        int8.choose_kept(job, plan, lambda kept: pt2e.BlockProbe(calibrated.convert(keeps_float(kept)), names)
                         .outputs(plan.photographs, batch), references)
    job.progress("calibrate")
    converted = pt2e.quantize(program, images, batch, plan.method, keeps_float(plan.kept))
    return export_program(converted, job.batch, job.resolution, job.dynamic_batch)


def _record(plan, check):
    from casvit_deploy.export import int8
    from casvit_deploy.formats.executorch import pt2e

    return int8.quantization_record(plan, pt2e.SCHEME, pt2e.config_record(plan.method), check)


class ExecuTorchExporter:
    @staticmethod
    def check(settings: ExportSettings) -> None:
        """int8 programs are quantized for XNNPACK only."""
        options: ExecuTorchOptions = settings.options
        if settings.precision is Precision.INT8 and options.delegate is not Delegate.XNNPACK:
            raise UsageError("int8 ExecuTorch programs are quantized for XNNPACK: use --delegate xnnpack")

    def export(self, job: ExportJob) -> FormatOutput:
        from casvit_deploy.export import int8
        from casvit_deploy.export.graph import export_program
        from casvit_deploy.formats.executorch.delegable import keepdim_spatial_means

        options: ExecuTorchOptions = job.options
        job.progress("export")
        program = export_program(job.model, job.batch, job.resolution, job.dynamic_batch)
        plan = int8.plan(job) if job.precision is Precision.INT8 else None
        lowered = _quantized_program(job, program, plan) if plan else program
        rewritten = keepdim_spatial_means(lowered)
        job.progress("lower")
        with temp_files_in(job.artifact.parent):  # the serializers' flatbuffer files, in the staging folder
            edge = _lower(lowered, options.delegate)
            report = coverage(edge)
            if report["portable_nodes"] and options.delegate is not Delegate.PORTABLE and not options.allow_portable:
                _refuse_portable(report, options.delegate)
            job.artifact.write_bytes(edge.to_executorch().buffer)
        job.progress("verify")
        check = _check(job, program, options.delegate, plan.photographs if plan else None)
        if check.failures:
            raise ExportError(f"ExecuTorch output differs from eager PyTorch: {check.failures[0]}")
        details = ExecuTorchDetails(delegation=report, keepdim_mean_rewrites=rewritten, load_check=check.to_dict(),
                                    **runtime_facts(job.artifact))
        return FormatOutput(program, [job.input_spec()], job.output_specs(), details,
                            quantization=plan and _record(plan, check))
