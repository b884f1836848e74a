"""ONNX export: dynamo `torch.onnx.export` of the `torch.export` program, opset 18.

The exporter's graph optimizer (constant folding, dead-code removal) is kept only if the
optimized graph still matches the eager model on a seeded input; otherwise the plain
translation is written. The file passes `onnx.checker` full check and carries metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from casvit_deploy.export.base import ExportJob, FormatOutput
from casvit_deploy.export.graph import FINAL_OUTPUT, block_outputs, example_input, export_program

OPSET = 18
INPUT, OUTPUT = "image", "logits"
RTOL = 1e-4  # max |onnx - eager| relative to max |eager|, fp32


def _to_onnx(program, optimize: bool):
    import torch

    return torch.onnx.export(program, dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                             opset_version=OPSET, optimize=optimize, verbose=False, report=False)


def _finish(path: Path, metadata: dict[str, str]) -> None:
    """Name the dynamic batch "batch", add metadata properties, run the full checker, and write the file in one piece."""
    import onnx

    model = onnx.load(str(path))
    for value in list(model.graph.input) + list(model.graph.output):
        batch = value.type.tensor_type.shape.dim[0]
        if batch.dim_param:  # the exporter names it after a symbol such as "s77"
            batch.dim_param = "batch"
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "casvit-deploy"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path), save_as_external_data=False)


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
        for optimize in (True, False):
            job.progress("lower")
            _to_onnx(program, optimize).save(str(job.artifact), external_data=False)
            _finish(job.artifact, job.metadata)
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
            "format": self.format, "opset": OPSET, "optimized": optimize, "verify_relative_error": error,
            "block_outputs_as_onnx_values": f"{len(found)}/{len(blocks)}",
            "block_outputs_missing_in_onnx": [b for b in blocks if b not in found],
        })
