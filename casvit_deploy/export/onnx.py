"""ONNX export: dynamo `torch.onnx.export` of the `torch.export` program at opset 18.

After translation each five-op exact-erf GELU is fused into one `Gelu` node (ONNX opset
20, or `com.microsoft.Gelu` where raising the opset would change another op; see
gelu_fusion.py): ONNX Runtime then runs it as one kernel instead of five. The exporter's
graph optimizer and the fusion are kept only if the graph still matches the eager model
on a seeded input; otherwise the next plainer graph is tried. The file passes
`onnx.checker` full check (run before and after the fusion; the checker does not know
com.microsoft ops, so for those the ORT load and eager comparison are the check) and
carries metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from casvit_deploy.export.base import ExportJob, FormatOutput
from casvit_deploy.export.gelu_fusion import choose_form, fuse_exact_gelu
from casvit_deploy.export.graph import FINAL_OUTPUT, block_outputs, example_input, export_program

OPSET = 18
INPUT, OUTPUT = "image", "logits"
RTOL = 1e-4  # max |onnx - eager| relative to max |eager|, fp32
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


def _relative_error(path: Path, job: ExportJob) -> float:
    """max |ORT - eager| / max |eager| on a seeded input of the artifact's batch size."""
    import onnxruntime as ort
    import torch

    image = example_input(job.batch, job.resolution, job.dynamic_batch)
    with torch.no_grad():
        ref = job.model(image).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run([OUTPUT], {INPUT: image.numpy()})[0]
    if out.shape != ref.shape:
        return float("inf")
    return float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-12))


def _specs(path: Path) -> tuple[list[dict], list[dict]]:
    """Input and output specs read back from the saved graph."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def spec(value, layout):
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
        return {"name": value.name, "shape": dims, "dtype": dtype, "layout": layout}

    return [spec(v, "NCHW") for v in graph.input], [spec(v, "NC") for v in graph.output]


def _opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _surviving_names(path: Path, blocks: dict[str, str]) -> list[str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    values = {o for node in graph.node for o in node.output}
    renamed = {FINAL_OUTPUT} if graph.output else set()  # the final node's value is renamed "logits"
    return [block for block, name in blocks.items() if name in values or block in renamed]


class OnnxExporter:
    format = "onnx"
    suffix = ".onnx"
    requires = (("onnx", "onnx"), ("onnxscript", "onnxscript"), ("onnxruntime", "onnxruntime"))
    precisions = ("fp32",)

    def export(self, job: ExportJob) -> FormatOutput:
        job.progress("export")
        program = export_program(job.model, job.batch, job.resolution, job.dynamic_batch)
        error = float("inf")
        for optimize, fuse in ATTEMPTS:
            job.progress("lower")
            _to_onnx(program, optimize).save(str(job.artifact), external_data=False)
            rewrites = _finish(job.artifact, job.metadata, fuse)
            job.progress("verify")
            error = _relative_error(job.artifact, job)
            if error <= RTOL:
                break
        else:
            raise RuntimeError(f"ONNX output differs from eager PyTorch (relative error {error:.2e})")
        inputs, outputs = _specs(job.artifact)
        blocks = block_outputs(program, job.model)
        found = _surviving_names(job.artifact, blocks)
        return FormatOutput(program, inputs, outputs, {
            "format": self.format, "opset": _opset(job.artifact), "optimized": optimize, **rewrites,
            "verify_relative_error": error,
            "block_outputs_as_onnx_values": f"{len(found)}/{len(blocks)}",
            "block_outputs_missing_in_onnx": [b for b in blocks if b not in found],
        })
