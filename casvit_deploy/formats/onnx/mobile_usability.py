"""What ONNX Runtime's mobile usability checker says of an ONNX file: how the NNAPI
(Android) and CoreML (iOS, MLProgram and NeuralNetwork) execution providers would partition
it, and which of them takes the whole graph.

This runs the checker's own steps (`python -m onnxruntime.tools.check_onnx_model_mobile_usability`):
the graph optimized to the basic level, shapes inferred, then each provider's supported-op
list applied with fixed input sizes required, and, for a graph with a dynamic input (a
dynamic batch), again as if its shapes were fixed. Its figures are estimates by op type; the
caveats it lists (e.g. "Only 2D Conv is supported") are recorded, not checked.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

PROVIDERS = {  # key -> (name people know, the checker's supported-ops table, or None for NNAPI)
    "nnapi": ("NNAPI", None),
    "coreml_mlprogram": ("CoreML MLProgram", "coreml_supported_mlprogram_ops.md"),
    "coreml_neuralnetwork": ("CoreML NeuralNetwork", "coreml_supported_neuralnetwork_ops.md"),
}


def _partitioning(info) -> dict:
    return {"partitions": info.num_partitions, "supported_nodes": info.num_supported_nodes,
            "nodes": info.num_nodes, "whole_graph": info.num_partitions == 1 and
            info.num_supported_nodes == info.num_nodes, "unsupported_ops": sorted(info.unsupported_ops),
            "suitability": info.suitability().name, "caveats": info.supported_ops_checker.get_caveats()}


def _check(model, table: str | None, fixed_sizes: bool):
    from onnxruntime.tools.mobile_helpers import usability_checker

    if table is None:
        return usability_checker.check_nnapi_partitions(model, require_fixed_input_sizes=fixed_sizes)
    return usability_checker.check_coreml_partitions(model, fixed_sizes, table)


def _partitions(model, fixed_sizes: bool) -> dict:
    return {key: _partitioning(_check(model, table, fixed_sizes)) for key, (_, table) in PROVIDERS.items()}


def _dynamic(model) -> bool:
    return any(not d.dim_value for i in model.graph.input for d in i.type.tensor_type.shape.dim)


def summary(providers: dict) -> str:
    """One line: which provider takes the whole graph, and how the others split it."""
    whole = [PROVIDERS[k][0] for k, p in providers.items() if p["whole_graph"]]
    split = [f"{PROVIDERS[k][0]} {p['partitions']} partitions"
             + (f" (unsupported: {', '.join(op.split(':')[-1] for op in p['unsupported_ops'])})"
                if p["unsupported_ops"] else "")
             for k, p in providers.items() if not p["whole_graph"]]
    head = (f"{' and '.join(whole)} EP takes the whole graph" if whole
            else "no mobile EP takes the whole graph (the CPU EP runs it)")
    return "ORT mobile: " + "; ".join([head, *split]) + _advice(providers)


def _advice(providers: dict) -> str:
    """What a split means for an app and what to do instead."""
    split = [PROVIDERS[k][0] for k, p in providers.items() if not p["whole_graph"]]
    whole = [f"the {PROVIDERS[k][0]} EP (iOS)" for k, p in providers.items() if p["whole_graph"]]
    if not split:
        return ""
    use = ", ".join(["the default CPU EP", *whole, "or ExecuTorch's .pte (Android)"])
    return (f". A split graph runs the unsupported ops on the CPU and copies tensors at every boundary, often "
            f"slower than the CPU alone: do not enable {' or '.join(split)} for this model; use {use}")


def check_mobile_usability(path: Path) -> dict:
    """Per provider: partitions, supported/total nodes, unsupported ops, the checker's verdict
    (YES/MAYBE/NO) and caveats; with a dynamic input also `with_fixed_shapes`; plus a
    one-line summary. The optimized copy it inspects is written next to `path` (an export's
    staging folder), not in the system temp folder."""
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model

    with tempfile.TemporaryDirectory(dir=Path(path).parent) as tmp:
        optimized = Path(tmp) / Path(path).name
        optimize_model(Path(path), optimized, use_external_initializers=True)
        model = ModelProtoWithShapeInfo(optimized.resolve()).model_with_shape_info
        providers = _partitions(model, fixed_sizes=True)
        result = {"checker": "onnxruntime.tools.mobile_helpers.usability_checker", "dynamic_inputs": _dynamic(model),
                  **providers, "summary": summary(providers)}
        if result["dynamic_inputs"]:
            fixed = _partitions(model, fixed_sizes=False)
            result["with_fixed_shapes"] = fixed
            result["summary"] = (summary(providers) + "; with a fixed batch (--batch N): "
                                 + summary(fixed).removeprefix("ORT mobile: "))
    return result
