"""The `.onnx` runner: ONNX Runtime (runtime/onnxruntime.py), with access to internal
tensors by value name (a probe session on a copy of the graph with extra outputs)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from casvit_deploy.artifacts.records import Signature, TensorSpec
from casvit_deploy.errors import UsageError
from casvit_deploy.model.blocks import FINAL_OUTPUT
from casvit_deploy.runtime.base import RunnerOptions
from casvit_deploy.runtime.onnxruntime import OnnxRuntimeRunner, session

SCOPES = "pkg.torch.onnx.name_scopes"  # the exporter's module path of each node, then its own name


def _dequantized(graph) -> dict[str, str]:
    """value -> DequantizeLinear(QuantizeLinear(value)) in a QDQ graph: what int8 consumers read."""
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found = {}
    for node in graph.node:
        if node.op_type == "QuantizeLinear":
            dq = [c for c in consumers.get(node.output[0], []) if c.op_type == "DequantizeLinear"]
            if dq:
                found[node.input[0]] = dq[0].output[0]
    return found


def onnx_signature(path: Path) -> Signature:
    """Graph inputs (initializers excluded) and outputs: names, sizes or dimension names,
    numpy dtype names and doc strings."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}

    def spec(value) -> TensorSpec:
        dims = tuple(d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
        return TensorSpec(value.name, dims, dtype, description=value.doc_string)

    return Signature(tuple(spec(v) for v in graph.input if v.name not in initializers),
                     tuple(spec(v) for v in graph.output))


def _scope_outputs(graph) -> dict[str, str]:
    """Module path -> the output of the last node inside that module, from the exporter's
    node metadata."""
    last = {}
    for node in graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == SCOPES), None)
        if scopes is None or not node.output:
            continue
        try:
            paths = ast.literal_eval(scopes)[:-1]
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        for path in paths if isinstance(paths, list) else ():
            last[path] = node.output[0]
    return last


def graph_block_tensors(graph, block_outputs: dict[str, str]) -> dict[str, str | None]:
    """Which FX node names survive as ONNX value names (in a quantized graph, their
    dequantized values); a name that does not (the exporter renames values when it retraces
    a program with free height and width) is found as the last node inside the block's
    module; the final block's output is the graph's (renamed) output."""
    values = {o for node in graph.node for o in node.output}
    dequantized = _dequantized(graph)
    names = {block: dequantized.get(fx, fx) if fx in values else None for block, fx in block_outputs.items()}
    if any(v is None for v in names.values()):
        scoped = _scope_outputs(graph)
        names = {block: value or scoped.get(block) for block, value in names.items()}
    if names.get(FINAL_OUTPUT, "") is None and graph.output:
        names[FINAL_OUTPUT] = graph.output[0].name
    return names


class OnnxRunner(OnnxRuntimeRunner):
    """An `.onnx` file in onnxruntime: the CPU provider, or on CUDA TensorRT/CUDA first."""

    supports_intermediates = True

    def __init__(self, path: Path, options: RunnerOptions = RunnerOptions()):
        super().__init__(path, options)
        self._probes: dict[tuple[str, ...], object] = {}

    def close(self) -> None:
        super().close()
        self._probes = {}

    def signature(self) -> Signature:
        return onnx_signature(self.path)

    def _graph(self):
        import onnx

        return onnx.load(str(self.path), load_external_data=False).graph

    def block_tensors(self, block_outputs: dict[str, str]) -> dict[str, str | None]:
        return graph_block_tensors(self._graph(), block_outputs)

    def _probe(self, names: tuple[str, ...]):
        """A session on an in-memory copy of the graph that also outputs `names`."""
        import onnx

        model = onnx.shape_inference.infer_shapes(onnx.load(str(self.path)))
        known = {v.name: v for v in list(model.graph.value_info) + list(model.graph.output)}
        values = {o for node in model.graph.node for o in node.output if o}
        if missing := set(names) - values:
            raise UsageError(f"{self.path.name} has no tensor(s) named {', '.join(sorted(missing))}")
        present = {o.name for o in model.graph.output}
        for name in names:
            if name not in present:
                model.graph.output.append(known.get(name) or onnx.ValueInfoProto(name=name))
        return session(model.SerializeToString(), self.providers, self.options.threads)

    def run_intermediates(self, image: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """Internal tensors by value name (e.g. those `block_tensors` found)."""
        key = tuple(names)
        if key not in self._probes:
            self._probes[key] = self._probe(key)
        return dict(zip(key, self._probes[key].run(list(key), self.feed(image))))
