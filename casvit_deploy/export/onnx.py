"""ONNX export: dynamo `torch.onnx.export` of the `torch.export` program at opset 18.

After translation each five-op exact-erf GELU is fused into one `Gelu` node (ONNX opset
20, or `com.microsoft.Gelu` where raising the opset would change another op; see
gelu_fusion.py): ONNX Runtime then runs it as one kernel instead of five. The exporter's
graph optimizer and the fusion are kept only if the graph passes the load check (ONNX
Runtime against the eager model, parity's metrics); otherwise the next plainer graph is tried. The file passes
`onnx.checker` full check (run before and after the fusion; the checker does not know
com.microsoft ops, so for those the ORT load and eager comparison are the check) and
carries metadata. Output names are the model's ("logits", or a backbone's "feat_s4" ...
"feat_s32"); free dimensions are named "batch", "height" and "width" (a feature map's
"height/4" etc.).
"""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.artifacts.manifest import TensorSpec
from casvit_deploy.errors import ExportError
from casvit_deploy.export.base import ExportJob, FormatOutput
from casvit_deploy.export.gelu_fusion import choose_form, fuse_exact_gelu
from casvit_deploy.export.graph import export_program
from casvit_deploy.settings import RESOLUTION_MAX, RESOLUTION_MIN, RESOLUTION_STEP

OPSET = 18
INPUT = "image"
ATTEMPTS = ((True, True), (False, True), (False, False))  # (exporter optimizer, GELU fusion), best first
NO_REWRITES = {"onnx_graph_rewrites": [], "gelu_fused": 0, "gelu_op": None}
GELU_OPS = {"onnx": "Gelu (ONNX opset 20, approximate=none)", "com.microsoft": "com.microsoft.Gelu"}


def _to_onnx(program, output_names: tuple[str, ...], optimize: bool):
    import torch

    return torch.onnx.export(program, dynamo=True, input_names=[INPUT], output_names=list(output_names),
                             opset_version=OPSET, optimize=optimize, verbose=False, report=False)


def _fuse(model) -> dict:
    """Fuse exact GELUs in place (after a full check of the unfused graph); describe what was done."""
    import onnx

    onnx.checker.check_model(model, full_check=True)
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


def _finish(path: Path, job: ExportJob, fuse: bool) -> dict:
    """Name the free dimensions, fuse GELUs, add metadata properties, run the full checker,
    and write the file in one piece; return the rewrite fields for the manifest."""
    import onnx

    model = onnx.load(str(path))
    _name_free_dims(model.graph, [job.input_spec()] + job.output_specs())
    rewrites = _fuse(model) if fuse else NO_REWRITES
    for key, value in {**job.metadata, "onnx_graph_rewrites": ",".join(rewrites["onnx_graph_rewrites"])}.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "casvit-deploy"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path), save_as_external_data=False)
    return rewrites


def _specs(path: Path, job: ExportJob) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input and output specs read back from the saved graph (layout and stride: the job's)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    expected = {s.name: s for s in [job.input_spec()] + job.output_specs()}

    def spec(value):
        dims = tuple(d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
        known = expected.get(value.name)
        return TensorSpec(value.name, dims, dtype, known and known.layout, known and known.stride)

    return [spec(v) for v in graph.input], [spec(v) for v in graph.output]


def _opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


class OnnxExporter:
    def export(self, job: ExportJob) -> FormatOutput:
        job.progress("export")
        program = export_program(job.model, job.batch, job.resolution, job.dynamic_batch, job.dynamic_shape)
        for optimize, fuse in ATTEMPTS:
            job.progress("lower")
            _to_onnx(program, job.output_names, optimize).save(str(job.artifact), external_data=False)
            rewrites = _finish(job.artifact, job, fuse)
            job.progress("verify")
            check = job.check(job.artifact, program)
            if not check.failures:
                break
        else:
            raise ExportError(f"ONNX output differs from eager PyTorch: {check.failures[0]}")
        inputs, outputs = _specs(job.artifact, job)
        return FormatOutput(program, inputs, outputs, {
            "opset": _opset(job.artifact), "optimized": optimize, **rewrites, **_dynamic_shape_facts(job),
            "load_check": check.to_dict()})


def _dynamic_shape_facts(job: ExportJob) -> dict:
    """What a caller of a free-size artifact must check (ONNX Runtime accepts any size)."""
    if not job.dynamic_shape:
        return {}
    return {"dynamic_shape": {"height_width_multiple_of": RESOLUTION_STEP, "min": RESOLUTION_MIN,
                              "max": RESOLUTION_MAX, "checked_by": "the caller (not enforced by the graph)"}}
