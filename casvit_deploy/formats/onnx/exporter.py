"""ONNX export: dynamo `torch.onnx.export` of the `torch.export` program at opset 18,
then written at the chosen opset (17 to 20; default 20) with the IR version that opset
needs, so ONNX Runtime releases that predate IR 10 load it (opset.py).

Opset 17 is converted down and 19 and 20 up by onnx's version converter. At opset 20 each
five-op exact-erf GELU is fused into one `Gelu` node (gelu_fusion.py): ONNX Runtime then
runs it as one kernel instead of five; below 20 the GELU stays the standard erf form, its
multiplications ordered so that ONNX Runtime fuses it into one kernel when it loads the file.
The exporter's graph optimizer and the GELU rewrite are kept only if the graph passes the load check
(ONNX Runtime against the eager model, parity's metrics); otherwise the next plainer graph
is tried. The file passes `onnx.checker` full check (before and after the fusion), carries
metadata and a doc string on its input and output, and the manifest records the first ONNX
Runtime release that loads it and what ONNX Runtime's mobile usability checker says of it.
An int8 graph is that checked fp32 graph quantized by ONNX Runtime (quantize.py) and
checked again, by agreement; its manifest records its CPU speed ratio to the fp32 graph,
measured here.

Output names are the model's ("logits", or a backbone's "feat_s4" ... "feat_s32"); free
dimensions are named "batch", "height" and "width" (a feature map's "height/4" etc.).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from casvit_deploy.artifacts.records import TensorSpec
from casvit_deploy.errors import ExportError
from casvit_deploy.export.base import ExportJob, ExportSettings, FormatOutput
from casvit_deploy.formats.onnx.details import OnnxDetails
from casvit_deploy.formats.onnx.gelu_fusion import GELU_OPSET, choose_form, fuse_exact_gelu, order_exact_gelu
from casvit_deploy.formats.onnx.mobile_usability import check_mobile_usability
from casvit_deploy.formats.onnx.opset import EXPORTER_MIN_OPSET, convert_down, ir_version_for, min_onnxruntime
from casvit_deploy.formats.onnx.runner import OnnxRunner, onnx_signature
from casvit_deploy.settings import INPUT_NAME, RESOLUTION_MAX, RESOLUTION_MIN, RESOLUTION_STEP, Precision

ATTEMPTS = ((True, True), (False, True), (False, False))  # (exporter optimizer, GELU rewrite), best first
ERF_FORM = "erf form: x * 0.5 * (1 + erf(x / sqrt(2))) as Div, Erf, Add, Mul, Mul"
ORDERED = ", multiplied by x before halving so that ONNX Runtime fuses it into one Gelu kernel"
NO_REWRITES = {"onnx_graph_rewrites": [], "gelu_fused": 0, "gelu_op": ERF_FORM}
GELU_OPS = {"onnx": "Gelu (ONNX opset 20, approximate=none)", "com.microsoft": "com.microsoft.Gelu"}


def _to_onnx(program, output_names: tuple[str, ...], optimize: bool):
    import torch

    return torch.onnx.export(program, dynamo=True, input_names=[INPUT_NAME], output_names=list(output_names),
                             opset_version=EXPORTER_MIN_OPSET, optimize=optimize, verbose=False, report=False)


def _at_opset(model, opset: int):
    """`model` (written at the exporter's opset) at `opset`, with the IR version it needs."""
    import onnx

    original = model
    if opset < EXPORTER_MIN_OPSET:
        model = convert_down(model, opset)
    elif opset > EXPORTER_MIN_OPSET:
        model = onnx.version_converter.convert_version(model, opset)
    model.ir_version = ir_version_for(opset)
    _keep_node_metadata(original.graph, model.graph)
    return model


def _keep_node_metadata(source, target) -> None:
    """Copy each node's metadata (the exporter's module scopes, which parity uses to find a
    block's output when value names change) to the node of `target` that writes the same
    value: onnx's version converter drops it."""
    by_output = {node.output[0]: node.metadata_props for node in source.node if node.output}
    for node in target.node:
        if node.output and not node.metadata_props and node.output[0] in by_output:
            node.metadata_props.extend(by_output[node.output[0]])


def _rewrite_gelus(model, opset: int) -> dict:
    """At opset 20 fuse exact GELUs into Gelu nodes, below it order them for ONNX Runtime's
    own fusion, in place (after a full check of the graph as exported); describe what was done."""
    import onnx

    onnx.checker.check_model(model, full_check=True)
    if opset < GELU_OPSET:
        if not order_exact_gelu(model):
            return NO_REWRITES
        return {"onnx_graph_rewrites": ["gelu_order"], "gelu_fused": 0, "gelu_op": ERF_FORM + ORDERED}
    form = choose_form(model)
    count = fuse_exact_gelu(model, form)
    if not count:
        return NO_REWRITES
    return {"onnx_graph_rewrites": ["gelu_fusion"], "gelu_fused": count, "gelu_op": GELU_OPS[form]}


def _name_free_dims(graph, specs: list[TensorSpec]) -> None:
    """Give the free dimensions the names in `specs` (the exporter names them after symbols,
    e.g. "s77" or "32*s25"); fixed dimensions stay as they are."""
    for value, spec in zip(list(graph.input) + list(graph.output), specs):
        for dim, name in zip(value.type.tensor_type.shape.dim, spec.shape):
            if dim.dim_param and isinstance(name, str):
                dim.dim_param = name


def _finish(path: Path, job: ExportJob, rewrite_gelus: bool) -> dict:
    """Write the opset asked for, name the free dimensions, rewrite GELUs, describe the
    inputs and outputs, add metadata properties, run the full checker, and write the file
    in one piece; return the rewrite fields for the manifest."""
    import onnx

    model = _at_opset(onnx.load(str(path)), job.options.opset)
    specs = [job.input_spec()] + job.output_specs()
    _name_free_dims(model.graph, specs)
    for value, spec in zip(list(model.graph.input) + list(model.graph.output), specs):
        value.doc_string = spec.description
    rewrites = _rewrite_gelus(model, job.options.opset) if rewrite_gelus else NO_REWRITES
    for key, value in {**job.metadata, "onnx_graph_rewrites": ",".join(rewrites["onnx_graph_rewrites"])}.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "casvit-deploy"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path), save_as_external_data=False)
    return rewrites


def _specs(path: Path, job: ExportJob) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input and output specs read back from the saved graph (as parity reads them); layout
    and stride: the job's."""
    found = onnx_signature(path)
    expected = {s.name: s for s in [job.input_spec()] + job.output_specs()}

    def with_job(spec: TensorSpec) -> TensorSpec:
        known = expected.get(spec.name)
        return replace(spec, layout=known and known.layout, stride=known and known.stride)

    return [with_job(s) for s in found.inputs], [with_job(s) for s in found.outputs]


def versions(path: Path) -> dict:
    """The file's default-domain opset, IR version and the first ONNX Runtime that loads it."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return {"opset": opset, "ir_version": model.ir_version,
            "min_onnxruntime": min_onnxruntime(opset, model.ir_version)}


def _write_fp32(job: ExportJob, program, path: Path) -> tuple[bool, dict, object]:
    """The fp32 graph at `path`, the first of ATTEMPTS that passes the fp32 load check:
    (exporter optimizer used, rewrite fields, load check)."""
    for optimize, rewrite_gelus in ATTEMPTS:
        job.progress("lower")
        _to_onnx(program, job.output_names, optimize).save(str(path), external_data=False)
        rewrites = _finish(path, job, rewrite_gelus)
        job.progress("verify")
        check = job.check(path, program, precision=Precision.FP32)
        if not check.failures:
            return optimize, rewrites, check
    raise ExportError(f"ONNX output differs from eager PyTorch: {check.failures[0]}")


def _strip_node_metadata(path: Path) -> None:
    """Drop the exporter's per-node metadata (scopes, stack traces): a quarter of an int8 file."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
    onnx.save(model, str(path), save_as_external_data=False)


def _search(job: ExportJob, program, fp32: Path, plan, folder: Path, cache: Path) -> None:
    """--auto-keep-float: each trial quantizes the fp32 graph into `folder` and reads its blocks."""
    from casvit_deploy.data.batches import run_in_batches
    from casvit_deploy.export import int8
    from casvit_deploy.formats.onnx import quantize as ort
    from casvit_deploy.quantize.targets import keeps_float

    batch = None if job.dynamic_batch else job.batch
    names, references = int8.reference_blocks(job, program, plan.photographs)

    def evaluate(kept: tuple[str, ...]):
        trial = folder / "trial.onnx"
        ort.quantize(fp32, trial, plan.calibration.images, batch, plan.method, keeps_float(kept), cache,
                     work_dir=folder)
        runner = OnnxRunner(trial)
        runner.open()
        with runner:
            return ort.block_outputs(runner, names, plan.photographs, batch) | int8.labelled_outputs(
                plan, lambda x: run_in_batches(runner.run, x, batch)[runner.output_names[0]])

    int8.choose_kept(job, plan, evaluate, references)


def _int8(job: ExportJob, program, fp32: Path):
    """Quantize the checked fp32 graph at `fp32` into `job.artifact`: (load check, record)."""
    from casvit_deploy.export import int8
    from casvit_deploy.formats.onnx import quantize as ort
    from casvit_deploy.quantize.targets import keeps_float

    plan = int8.plan(job)
    with tempfile.TemporaryDirectory(dir=job.artifact.parent) as tmp:
        cache = Path(tmp) / "calibration.json"  # ranges observed once, reused by every trial
        if plan.options.auto_keep_float:
            _search(job, program, fp32, plan, Path(tmp), cache)
        job.progress("quantize")
        ort.quantize(fp32, job.artifact, plan.calibration.images, None if job.dynamic_batch else job.batch,
                     plan.method, keeps_float(plan.kept), cache, work_dir=Path(tmp))
    _strip_node_metadata(job.artifact)
    job.progress("verify")
    check = job.check(job.artifact, program, images=plan.photographs)
    if check.failures:
        raise ExportError(f"int8 ONNX output does not agree with eager PyTorch: {check.failures[0]}")
    job.progress("time fp32 vs int8")
    speed = ort.cpu_speed_ratio(fp32, job.artifact, job.batch, job.resolution)
    return check, int8.quantization_record(plan, ort.SCHEME, ort.config_record(plan.method), check, speed)


class OnnxExporter:
    @staticmethod
    def check(settings: ExportSettings) -> None:
        """Every request the format table lets through can be built (opsets are checked by
        OnnxOptions)."""

    def export(self, job: ExportJob) -> FormatOutput:
        from casvit_deploy.export.graph import export_program

        job.progress("export")
        program = export_program(job.model, job.batch, job.resolution, job.dynamic_batch, job.dynamic_shape)
        quantized = job.precision is Precision.INT8
        fp32 = job.artifact.with_name(job.artifact.stem + ".fp32.onnx") if quantized else job.artifact
        optimize, rewrites, check = _write_fp32(job, program, fp32)
        fp32_check, record = None, None
        if quantized:
            fp32_check = check.to_dict()  # of the graph that was quantized
            check, record = _int8(job, program, fp32)
            fp32.unlink()
        inputs, outputs = _specs(job.artifact, job)
        facts = versions(job.artifact)
        usability = check_mobile_usability(job.artifact)
        notes = [f"opset {facts['opset']}, IR {facts['ir_version']}: loads in ONNX Runtime "
                 f">= {facts['min_onnxruntime']}", usability["summary"], *_speed_notes(record)]
        details = OnnxDetails(**facts, optimized=optimize, **rewrites, fp32_load_check=fp32_check,
                              dynamic_shape=_dynamic_shape_facts(job), mobile_usability=usability,
                              load_check=check.to_dict())
        return FormatOutput(program, inputs, outputs, details, notes=notes, quantization=record)


def _speed_notes(record) -> list[str]:
    """An int8 graph's CPU speed ratio, said plainly when it is no CPU speed-up."""
    speed = record.cpu_speed_ratio if record else None
    if not speed:
        return []
    from casvit_deploy.formats.onnx.quantize import NPU_PROVIDERS
    from casvit_deploy.machine import describe_int8

    where = f"on this CPU's CPU execution provider ({speed['cpu']}, {describe_int8(speed['int8_isa'])})"
    if speed["intended_for"] == NPU_PROVIDERS:
        return [f"int8 is {speed['ratio']:.2f}x fp32 {where}: slower, so this artifact is for {NPU_PROVIDERS}, "
                "not a CPU speed-up"]
    return [f"int8 is {speed['ratio']:.2f}x fp32 {where}"]


def _dynamic_shape_facts(job: ExportJob) -> dict | None:
    """What a caller of a free-size artifact must check (ONNX Runtime accepts any size)."""
    if not job.dynamic_shape:
        return None
    return {"height_width_multiple_of": RESOLUTION_STEP, "min": RESOLUTION_MIN, "max": RESOLUTION_MAX,
            "checked_by": "the caller (not enforced by the graph)"}
