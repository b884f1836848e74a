"""ONNX export: dynamo `torch.onnx.export` of the `torch.export` program at opset 18.

After translation each five-op exact-erf GELU is fused into one `Gelu` node (ONNX opset
20, or `com.microsoft.Gelu` where raising the opset would change another op; see
gelu_fusion.py): ONNX Runtime then runs it as one kernel instead of five. The exporter's
graph optimizer and the fusion are kept only if the graph passes the load check (ONNX
Runtime against the eager model, parity's metrics); otherwise the next plainer graph is tried. The file passes
`onnx.checker` full check (run before and after the fusion; the checker does not know
com.microsoft ops, so for those the ORT load and eager comparison are the check) and
carries metadata.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from casvit_deploy.artifacts.manifest import TensorSpec
from casvit_deploy.errors import ExportError
from casvit_deploy.export.base import ExportJob, FormatOutput
from casvit_deploy.export.gelu_fusion import choose_form, fuse_exact_gelu
from casvit_deploy.export.graph import export_program
from casvit_deploy.runtime.onnx import onnx_signature

OPSET = 18
INPUT, OUTPUT = "image", "logits"
ATTEMPTS = ((True, True), (False, True), (False, False))  # (exporter optimizer, GELU fusion), best first
NO_REWRITES = {"onnx_graph_rewrites": [], "gelu_fused": 0, "gelu_op": None}
GELU_OPS = {"onnx": "Gelu (ONNX opset 20, approximate=none)", "com.microsoft": "com.microsoft.Gelu"}


def _to_onnx(program, optimize: bool):
    import torch

    return torch.onnx.export(program, dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
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


def _finish(path: Path, metadata: dict[str, str], fuse: bool) -> dict:
    """Name the dynamic batch "batch", fuse GELUs, add metadata properties, run the full checker,
    and write the file in one piece; return the rewrite fields for the manifest."""
    import onnx

    model = onnx.load(str(path))
    for value in list(model.graph.input) + list(model.graph.output):
        batch = value.type.tensor_type.shape.dim[0]
        if batch.dim_param:  # the exporter names it after a symbol such as "s77"
            batch.dim_param = "batch"
    rewrites = _fuse(model) if fuse else NO_REWRITES
    for key, value in {**metadata, "onnx_graph_rewrites": ",".join(rewrites["onnx_graph_rewrites"])}.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "casvit-deploy"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path), save_as_external_data=False)
    return rewrites


def _specs(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input and output specs read back from the saved graph (as parity reads them), with layouts."""
    found = onnx_signature(path)
    return ([replace(s, layout="NCHW") for s in found.inputs], [replace(s, layout="NC") for s in found.outputs])


def _opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


class OnnxExporter:
    def export(self, job: ExportJob) -> FormatOutput:
        job.progress("export")
        program = export_program(job.model, job.batch, job.resolution, job.dynamic_batch)
        for optimize, fuse in ATTEMPTS:
            job.progress("lower")
            _to_onnx(program, optimize).save(str(job.artifact), external_data=False)
            rewrites = _finish(job.artifact, job.metadata, fuse)
            job.progress("verify")
            check = job.check(job.artifact, program)
            if not check.failures:
                break
        else:
            raise ExportError(f"ONNX output differs from eager PyTorch: {check.failures[0]}")
        inputs, outputs = _specs(job.artifact)
        return FormatOutput(program, inputs, outputs, {
            "opset": _opset(job.artifact), "optimized": optimize, **rewrites, "load_check": check.to_dict()})
