"""ONNX int8: ONNX Runtime's static quantization into a QDQ graph.

`quant_pre_process` (shape inference) then `quantize_static`: QuantizeLinear /
DequantizeLinear pairs around every quantized op, activations uint8 (asymmetric),
weights int8 per-channel symmetric (U8S8: the form ONNX Runtime's CPU provider fuses
into QLinearConv, and what NPU providers such as QNN, NNAPI and XNNPACK take).
Activation ranges come from a calibration set (min-max, percentile or entropy). Nodes
whose module (the exporter's `pkg.torch.onnx.name_scopes` metadata) is kept float are
excluded, and the float nodes read the float value of a tensor that the QDQ graph also
quantizes for its int8 consumers (`_float_inputs`): ONNX Runtime's quantizer shares one
Q/DQ pair among all consumers, which would quantize a float-kept residual stream anyway.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import numpy as np

from casvit_deploy.atomic import temp_files_in
from casvit_deploy.data.batches import chunks, run_in_batches
from casvit_deploy.data.images import seeded_noise
from casvit_deploy.machine import cpu_record
from casvit_deploy.model.blocks import FINAL_OUTPUT
from casvit_deploy.quantize.targets import NodeOrigin
from casvit_deploy.quiet import stdout_silenced
from casvit_deploy.settings import CalibrationMethod

SCHEME = ("ONNX Runtime quantize_static, QDQ: activations uint8 per-tensor asymmetric, weights int8 per-channel "
          "symmetric (U8S8), static, calibrated")
SCOPES, CLASSES = "pkg.torch.onnx.name_scopes", "pkg.torch.onnx.class_hierarchy"


def config_record(method: CalibrationMethod) -> dict:
    return {"quantizer": "onnxruntime.quantization.quantize_static", "format": "QDQ",
            "weights": "int8 per-channel symmetric", "activations": "uint8 per-tensor asymmetric, static",
            "calibrate_method": _ort_method(method).name}


def _ort_method(method: CalibrationMethod):
    from onnxruntime.quantization import CalibrationMethod as OrtMethod

    return {CalibrationMethod.MINMAX: OrtMethod.MinMax, CalibrationMethod.PERCENTILE: OrtMethod.Percentile,
            CalibrationMethod.ENTROPY: OrtMethod.Entropy}[method]


def _reader(input_name: str, images: np.ndarray, batch: int | None):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._feeds = iter({input_name: chunk} for chunk in chunks(images, batch))

        def get_next(self):
            return next(self._feeds, None)

    return Reader()


def _metadata_list(node, key: str) -> list[str]:
    value = next((p.value for p in node.metadata_props if p.key == key), None)
    return list(ast.literal_eval(value)) if value else []


def node_origins(model) -> dict[str, NodeOrigin]:
    """ONNX node name -> where it came from, from the exporter's scope metadata. Nodes
    without it (e.g. fused GELUs) take the origin of their first input's producer."""
    producers = {out: node for node in model.graph.node for out in node.output}
    found: dict[str, NodeOrigin] = {}
    for node in model.graph.node:
        scopes, classes = _metadata_list(node, SCOPES), _metadata_list(node, CLASSES)
        if scopes and classes:
            op = classes[-1].split(".")[1] if classes[-1].count(".") >= 2 else node.op_type.lower()
            groups = next((a.i for a in node.attribute if a.name == "group"), 1)
            found[node.name] = NodeOrigin(tuple(s for s in scopes[1:-1] if s), tuple(classes[:-1]), op, groups)
        else:
            source = producers.get(node.input[0]) if node.input else None
            inherited = found.get(source.name) if source is not None else None
            found[node.name] = NodeOrigin(inherited.paths if inherited else (), inherited.classes if inherited
                                          else (), node.op_type.lower())
    return found


def _float_inputs(model, excluded: set[str]) -> int:
    """Let each excluded (float) node read X instead of DequantizeLinear(QuantizeLinear(X))
    when X comes from another float node or the graph input; returns how many inputs changed."""
    producers = {out: node for node in model.graph.node for out in node.output}
    float_values = {model.graph.input[0].name} | {o for n in model.graph.node if n.name in excluded for o in n.output}
    changed = 0
    for node in model.graph.node:
        if node.name not in excluded:
            continue
        for i, name in enumerate(node.input):
            dq = producers.get(name)
            q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear" and q.input[0] in float_values:
                node.input[i] = q.input[0]
                changed += 1
    return changed


def quantize(fp32_path: Path, out_path: Path, images: np.ndarray, batch: int | None,
             method: CalibrationMethod, keep_float: Callable[[NodeOrigin], bool] = lambda origin: False,
             cache: Path | None = None, *, work_dir: Path) -> None:
    """Write the QDQ int8 form of the ONNX model at `fp32_path` to `out_path`. With `cache`
    (a file path), the tensor ranges are calibrated once and reused by later calls. Every
    temporary file, ONNX Runtime's own included, is written in `work_dir` (a folder the
    caller owns and removes: an export's staging folder), never in the system temp folder."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = Path(work_dir) / "pre.onnx"
    with temp_files_in(work_dir):  # quant_pre_process and quantize_static take no folder of their own
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        model = onnx.load(str(pre))
        exclude = [name for name, where in node_origins(model).items() if keep_float(where)]
        with stdout_silenced():  # the calibrators print their settings
            quantize_static(str(pre), str(out_path), _reader(model.graph.input[0].name, images, batch),
                            quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, per_channel=True, calibrate_method=_ort_method(method),
                            nodes_to_exclude=exclude, calibration_cache_path=cache)
    pre.unlink()
    quantized = onnx.load(str(out_path))
    if _float_inputs(quantized, set(exclude)):
        onnx.save(quantized, str(out_path))


def block_outputs(runner, names: dict[str, str], images: np.ndarray, batch: int | None) -> dict[str, np.ndarray]:
    """Block -> output over `images`, read from inside an opened ONNX runner (dequantized
    values in a QDQ graph); `names` maps blocks to the fp32 program's node names. The final
    output is the graph's own (as a user receives it, after any output quantization), so a
    search judges the artifact it ships."""
    tensors = {b: t for b, t in runner.block_tensors(names).items() if t is not None and b != FINAL_OUTPUT}
    values = run_in_batches(lambda chunk: runner.run_intermediates(chunk, list(tensors.values())), images, batch)
    outputs = {block: values[tensor] for block, tensor in tensors.items()}
    if FINAL_OUTPUT in names:
        outputs[FINAL_OUTPUT] = run_in_batches(runner.run, images, batch)[runner.output_names[0]]
    return outputs


def cpu_speed_ratio(fp32_path: Path, int8_path: Path, batch: int, resolution: int, threads: int | None = None,
                    rounds: int = 5, runs: int = 10) -> dict:
    """fp32 / int8 median latency on ONNX Runtime's CPU provider, the two interleaved over
    `rounds` (ratio = median of the per-round ratios): a quick figure for the manifest;
    `casvit bench` measures it properly."""
    import os
    import statistics
    import time

    import onnxruntime as ort

    threads = threads or len(os.sched_getaffinity(0))
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                for p in (fp32_path, int8_path)]
    feed = {sessions[0].get_inputs()[0].name: seeded_noise(resolution, max(batch, 1))}
    medians: list[list[float]] = [[], []]
    for _ in range(rounds):
        for session, out in zip(sessions, medians):
            session.run(None, feed)
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                session.run(None, feed)
                times.append(time.perf_counter() - start)
            out.append(statistics.median(times) * 1e3)
    ratios = [f / i for f, i in zip(*medians)]
    return {"runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider", "threads": threads, **cpu_record(),
            "fp32_ms": statistics.median(medians[0]), "int8_ms": statistics.median(medians[1]),
            "ratio": statistics.median(ratios), "rounds": rounds, "runs_per_round": runs,
            "note": "measured at export on this machine; fp32 / int8 latency, > 1 means int8 is faster",
            "intended_for": intended_for(statistics.median(ratios)), "npu_only": statistics.median(ratios) < 1.0}


NPU_PROVIDERS = "NPU execution providers (NNAPI, QNN, CoreML EP)"


def intended_for(ratio: float) -> str:
    """What an int8 QDQ graph is for, judged by its CPU speed ratio to fp32 measured here: a
    CPU speed-up, or (slower than fp32 on the CPU execution provider) NPU execution
    providers, which take QDQ graphs as their int8 input."""
    return "CPU and NPU execution providers" if ratio >= 1.0 else NPU_PROVIDERS
