"""ExecuTorch export: `.pte` lowered with the XNNPACK (or CoreML) partitioner, or with none
("portable": every op on ExecuTorch's reference kernels, a slow baseline for comparison).
int8 programs are quantized first with PT2E and XNNPACK's quantizer (pt2e.py); which op
kinds run int8 is chosen by measured speed on this machine unless `speed_choice` is off
(speed.py).

Delegation coverage is measured on the lowered graph; an artifact that leaves compute
ops on portable kernels is refused unless the `allow_portable` option is set. The
written program passes the load check (run through its runner against eager) before it
is accepted (not for the CoreML delegate off macOS: it lowers on Linux, but only Apple
builds of the runtime can load it, so the manifest says the check was not run).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class _Lowered:
    """A program lowered to its delegate, its serialized bytes (the .pte), and how many of
    its spatial means were made delegable."""

    edge: object
    buffer: bytes
    means: int


def _lowered(exported, delegate: Delegate, staging: Path) -> _Lowered:
    """`exported` lowered to `delegate`, its means made delegable first (in place)."""
    from casvit_deploy.formats.executorch.delegable import keepdim_spatial_means

    means = keepdim_spatial_means(exported)
    with temp_files_in(staging):  # the serializers' flatbuffer files, in the staging folder
        edge = _lower(exported, delegate)
        return _Lowered(edge, edge.to_executorch().buffer, means)


def _quantizer(plan):
    """XNNPACK's PT2E quantizer for the plan, as `make(keep_float)` (quantize/pt2e.py)."""
    from functools import partial

    from casvit_deploy.formats.executorch import pt2e

    return partial(pt2e.quantizer, plan.method)


def _int8(job: ExportJob, program, plan, extra: tuple[str, ...] = ()) -> object:
    """The int8 program to lower: PT2E-quantized with what the plan, and `extra`, keep float."""
    from casvit_deploy.export import int8
    from casvit_deploy.export.graph import export_program

    converted = int8.quantized_module(job, program, plan, _quantizer(plan), extra=extra)
    return export_program(converted, job.batch, job.resolution, job.dynamic_batch)


def _speed_choice(job: ExportJob, program, plan, delegate: Delegate) -> tuple[_Lowered, object]:
    """The int8 program whose op kinds run int8 only where that is faster here
    (formats/executorch/speed.py), and the record of the choice (what it adds to the
    plan's kept-float targets is added there, with the reason)."""
    from casvit_deploy.export.graph import export_program
    from casvit_deploy.formats.executorch import speed
    from casvit_deploy.runtime.eager import EagerRunner

    staging, built = job.artifact.parent, {}

    def build(extra: tuple[str, ...]) -> bytes:
        built[extra] = _lowered(_int8(job, program, plan, extra), delegate, staging)
        return built[extra].buffer

    job.progress("speed choice: lower fp32")
    fp32 = _lowered(export_program(job.model, job.batch, job.resolution, job.dynamic_batch), delegate, staging)
    reference = EagerRunner(job.model).run(plan.photographs)["logits"]
    _, choice = speed.choose_program(
        build, fp32.buffer, job.resolution.shape(job.batch),
        lambda buffer: speed.min_cosine(buffer, plan.photographs, reference, job.batch), staging, job.progress)
    for kind in choice.chosen.extra:
        plan.kept += (kind,)
        plan.reasons[kind] = choice.reason()
    return built[choice.chosen.extra], choice


def _program(job: ExportJob, program, plan, options: ExecuTorchOptions) -> tuple[_Lowered, object]:
    """The lowered program to ship, and the speed choice that picked it (None if none ran)."""
    from casvit_deploy.export import int8

    staging = job.artifact.parent
    if plan is None:
        return _lowered(program, options.delegate, staging), None
    int8.search_pt2e(job, program, plan, _quantizer(plan))
    if options.speed_choice:
        return _speed_choice(job, program, plan, options.delegate)
    return _lowered(_int8(job, program, plan), options.delegate, staging), None


def _record(plan, check, choice):
    from casvit_deploy.export import int8
    from casvit_deploy.formats.executorch import pt2e

    config = pt2e.config_record(plan.method) | ({"speed_choice": choice.record()} if choice else {})
    return int8.quantization_record(plan, pt2e.SCHEME, config, check, choice.speed_ratio() if choice else None)


class ExecuTorchExporter:
    @staticmethod
    def check(settings: ExportSettings) -> None:
        """int8 programs are quantized for XNNPACK only; the speed choice is int8's."""
        options: ExecuTorchOptions = settings.options
        if settings.precision is Precision.INT8 and options.delegate is not Delegate.XNNPACK:
            raise UsageError("int8 ExecuTorch programs are quantized for XNNPACK: use --delegate xnnpack")
        if not options.speed_choice and settings.precision is not Precision.INT8:
            raise UsageError("--no-speed-choice applies to --precision int8 only (which op kinds run int8)")

    def export(self, job: ExportJob) -> FormatOutput:
        from casvit_deploy.export import int8
        from casvit_deploy.export.graph import export_program

        options: ExecuTorchOptions = job.options
        job.progress("export")
        program = export_program(job.model, job.batch, job.resolution, job.dynamic_batch)
        plan = int8.plan(job) if job.precision is Precision.INT8 else None
        job.progress("lower")
        lowered, choice = _program(job, program, plan, options)
        report = coverage(lowered.edge)
        if report["portable_nodes"] and options.delegate is not Delegate.PORTABLE and not options.allow_portable:
            _refuse_portable(report, options.delegate)
        job.artifact.write_bytes(lowered.buffer)
        job.progress("verify")
        check = _check(job, program, options.delegate, plan.photographs if plan else None)
        if check.failures:
            raise ExportError(f"ExecuTorch output differs from eager PyTorch: {check.failures[0]}")
        details = ExecuTorchDetails(delegation=report, keepdim_mean_rewrites=lowered.means,
                                    load_check=check.to_dict(), **runtime_facts(job.artifact))
        return FormatOutput(program, [job.input_spec()], job.output_specs(), details,
                            quantization=plan and _record(plan, check, choice))
