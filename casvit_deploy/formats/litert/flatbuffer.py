"""A `.tflite` file read and rewritten without an interpreter, through the TFLite schema
bindings that ai-edge-litert ships (`ai_edge_litert.schema_py_generated`).

`census` says what the file really computes in: each op is counted by the dtype of its
first input, so a file whose compute ops take int8 is int8, while a float file that only
carries quantize/dequantize pairs around float ops (what the converter writes when it is
not given the quantizer's config) is "fake-int8", whatever its name says. `finalize` is
the one rewrite an export applies: the interface's names, the block outputs' names, string
metadata, and identical zero-point vectors stored once (a flatbuffer may point several
tables at one vector; the runtime reads the same values).
"""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np

IDENTIFIER = b"TFL3"
COMPUTE = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "MEAN", "SUM", "GELU",
           "LOGISTIC", "SOFTMAX", "BATCH_MATMUL", "AVERAGE_POOL_2D", "MAX_POOL_2D", "RELU", "HARD_SWISH", "TANH"}
INTEGER = {"INT8", "UINT8", "INT16"}
WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
METADATA = "casvit"  # the file's own record of what it is (the manifest's embedded metadata), JSON
# What an export of each precision must be, by the census's verdict
EXPECTED = {"fp32": "float", "fp16": "fp16-weights", "int8": "int8"}
_SIGNATURE_OUTPUT = re.compile(r"output_(\d+)$")


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _names(enum) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def read(data: bytes):
    """The flatbuffer's root `Model`; ValueError for bytes that are not a TFLite model."""
    fb = _schema()
    if len(data) < 8 or not fb.Model.ModelBufferHasIdentifier(data, 0):
        raise ValueError("not a TFLite flatbuffer (no 'TFL3' identifier)")
    return fb.Model.GetRootAs(data, 0)


def op_name(model, index: int, names: dict[int, str]) -> str:
    code = model.OperatorCodes(index)
    name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "UNKNOWN")  # schema >= 2.4 rule
    return f"CUSTOM:{(code.CustomCode() or b'').decode(errors='replace')}" if name == "CUSTOM" else name


def _inputs(op) -> list[int]:
    return [op.Inputs(k) for k in range(op.InputsLength()) if op.Inputs(k) >= 0]


def _ops(model) -> list[tuple[str, list[int], list[int]]]:
    """(op name, input tensors, output tensors) of the main subgraph, in execution order."""
    names, graph = _names(_schema().BuiltinOperator), model.Subgraphs(0)
    return [(op_name(model, op.OpcodeIndex(), names), _inputs(op), [op.Outputs(k) for k in range(op.OutputsLength())])
            for op in map(graph.Operators, range(graph.OperatorsLength()))]


def census(data: bytes) -> dict:
    """Ops by kind and by the dtype they compute in, quantize/dequantize counts, activation
    quantize->dequantize pairs (no compute between them), how weights are stored, and the verdict."""
    model = read(data)
    graph, types = model.Subgraphs(0), _names(_schema().TensorType)
    dtype = {}
    ops, by_dtype, weights, producer, pairs = Counter(), Counter(), Counter(), {}, 0
    for name, inputs, outputs in _ops(model):
        ops[name] += 1
        for t in inputs + outputs:
            dtype.setdefault(t, types.get(graph.Tensors(t).Type(), "UNKNOWN"))
        if name in COMPUTE and inputs:
            by_dtype[(name, dtype[inputs[0]])] += 1
        pairs += name == "DEQUANTIZE" and bool(inputs) and producer.get(inputs[0], ("",))[0] == "QUANTIZE"
        if name in WEIGHTED and len(inputs) > 1:
            weights[_stored(inputs[1], dtype, producer)] += 1
        producer.update({t: (name, inputs) for t in outputs})
    found = {"ops": dict(ops), "compute": _nested(by_dtype),
             "int8_compute_ops": sum(n for (_, t), n in by_dtype.items() if t in INTEGER),
             "float_compute_ops": sum(n for (_, t), n in by_dtype.items() if t not in INTEGER),
             "quantize": ops["QUANTIZE"], "dequantize": ops["DEQUANTIZE"], "quantize_dequantize_pairs": pairs,
             "weights": dict(weights)}
    return found | {"verdict": verdict(found)}


def _stored(tensor: int, dtype: dict, producer: dict) -> str:
    """How a weight is stored: its dtype, or "FLOAT16 -> DEQUANTIZE" when dequantized at load."""
    source = producer.get(tensor)
    if source and source[0] == "DEQUANTIZE" and source[1]:
        return f"{dtype[source[1][0]]} -> DEQUANTIZE"
    return dtype[tensor]


def _nested(by_dtype: Counter) -> dict:
    out: dict[str, dict[str, int]] = {}
    for (name, kind), n in sorted(by_dtype.items()):
        out.setdefault(name, {})[kind] = n
    return out


def verdict(found: dict) -> str:
    """"int8": compute ops take int8 activations; "fake-int8": only float compute, between
    activation quantize->dequantize pairs; "fp16-weights" / "int8-weights": float compute on
    weights dequantized at load; "dynamic-range": int8 weights fed to float ops; else "float"."""
    stored = found["weights"]
    if found["int8_compute_ops"]:
        return "int8"
    if found["quantize_dequantize_pairs"]:
        return "fake-int8"
    if any(k.startswith("FLOAT16 ->") for k in stored):
        return "fp16-weights"
    if any(k.startswith("INT8 ->") for k in stored):
        return "int8-weights"
    return "dynamic-range" if "INT8" in stored else "float"


def metadata(data: bytes) -> dict[str, bytes]:
    """The file's metadata entries by name (e.g. the converter's "min_runtime_version")."""
    model, found = read(data), {}
    for k in range(model.MetadataLength()):
        entry = model.Metadata(k)
        buffer = model.Buffers(entry.Buffer())
        if buffer.DataLength():
            raw = buffer.DataAsNumpy().tobytes()
        else:  # stored after the flatbuffer (large models)
            raw = bytes(data[buffer.Offset():buffer.Offset() + buffer.Size()]) if buffer.Offset() else b""
        found[(entry.Name() or b"").decode(errors="replace")] = raw
    return found


def min_runtime_version(data: bytes) -> str | None:
    raw = metadata(data).get("min_runtime_version")
    return raw.rstrip(b"\0").decode(errors="replace") if raw else None


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


def tensor_names(data: bytes) -> list[str]:
    """The main subgraph's tensor names, by index."""
    graph = read(data).Subgraphs(0)
    return [(graph.Tensors(i).Name() or b"").decode(errors="replace") for i in range(graph.TensorsLength())]


def op_outputs(data: bytes) -> list[tuple[str, list[int]]]:
    """(op name, output tensors) of the main subgraph, in execution order."""
    return [(name, outputs) for name, _, outputs in _ops(read(data))]


def _name_interface(model_t, input_names: list[str], output_names: list[str]) -> None:
    """Signature and I/O tensor names: inputs in order; the converter's "output_K" is the
    model's K-th output."""
    graph = model_t.subgraphs[0]
    for signature in model_t.signatureDefs or []:
        for entry, name in zip(signature.inputs, input_names):
            entry.name = graph.tensors[entry.tensorIndex].name = name
        for entry in signature.outputs:
            found = _SIGNATURE_OUTPUT.search(_text(entry.name))
            if found and int(found.group(1)) < len(output_names):
                entry.name = graph.tensors[entry.tensorIndex].name = output_names[int(found.group(1))]


def _add_metadata(model_t, name: str, value: bytes) -> None:
    fb = _schema()
    buffer = fb.BufferT()
    buffer.data = np.frombuffer(value, dtype=np.uint8)
    model_t.buffers.append(buffer)
    entry = fb.MetadataT()
    entry.name, entry.buffer = name, len(model_t.buffers) - 1
    model_t.metadata = [m for m in (model_t.metadata or []) if _text(m.name) != name] + [entry]


def _pack(model_t) -> bytes:
    """Serialize, storing each distinct int64 vector (the per-channel zero points) once."""
    import flatbuffers

    class SharedZeroPoints(flatbuffers.Builder):
        def __init__(self, size: int):
            super().__init__(size)
            self.stored = {}

        def CreateNumpyVector(self, x):  # the flatbuffers API's name
            if x.dtype != np.int64:
                return super().CreateNumpyVector(x)
            key = x.tobytes()
            if key not in self.stored:
                self.stored[key] = super().CreateNumpyVector(x)
            return self.stored[key]

    builder = SharedZeroPoints(1024)
    builder.Finish(model_t.Pack(builder), file_identifier=IDENTIFIER)
    return bytes(builder.Output())


def finalize(data: bytes, input_names: list[str], output_names: list[str], renames: dict[int, str],
             record: dict[str, str]) -> bytes:
    """The file as published: interface names, tensors renamed (`renames`: index -> name),
    `record` as the JSON metadata entry "casvit", zero-point vectors shared."""
    from ai_edge_litert.tools import flatbuffer_utils

    model_t = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    _name_interface(model_t, input_names, output_names)
    for index, name in renames.items():
        model_t.subgraphs[0].tensors[index].name = name
    _add_metadata(model_t, METADATA, json.dumps(record, sort_keys=True).encode())
    return _pack(model_t)
