"""The LiteRT export: the deploy form's `torch.export` program (for int8, its PT2E module
quantized with litert-torch's quantizer, quantizer.py) converted by litert-torch into a
`.tflite` file (no TensorFlow), fp16 weights cast by ai-edge-quantizer, then finalized
(flatbuffer.finalize: the interface's names, each block's tensor named after the manifest's
`block_outputs`, the embedded metadata, zero-point vectors shared).

The written file must be what was asked for, by its own op census: an int8 export whose
compute ops do not take int8 (e.g. a fake-int8 file of float ops between quantize/dequantize
pairs) is refused, as is a float file that is not float. Then it passes the load check.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from functools import partial

from casvit_deploy.atomic import temp_files_in
from casvit_deploy.errors import ExportError
from casvit_deploy.export.base import ExportJob, FormatOutput
from casvit_deploy.formats.litert import flatbuffer
from casvit_deploy.formats.litert.details import LiteRTDetails
from casvit_deploy.formats.litert.options import Layout
from casvit_deploy.formats.litert.runner import Port, interpreter, ports
from casvit_deploy.settings import INPUT_NAME, Precision

# The oldest runtime these files were run in (the LiteRT probe, tflite-runtime 2.14.0 on
# Python 3.11: fp32, NHWC, backbone, int8 and fp16-weight files); older ones have no wheel here.
OLDEST_RUNTIME_TESTED = "tflite-runtime 2.14.0"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The converter's progress lines (stdout), its native logs and torchao's import notes (fd 2)."""
    from casvit_deploy.quiet import native_stderr_silenced, stdout_silenced

    with stdout_silenced(), native_stderr_silenced():
        yield


def channels_last_input(module):
    """`module` (an FX GraphModule) taking its image NHWC: a permute to NCHW after the input,
    which the converter cancels against the layout change it makes itself."""
    import torch

    graph = module.graph
    image = next(n for n in graph.nodes if n.op == "placeholder")
    with graph.inserting_after(image):
        permuted = graph.call_function(torch.ops.aten.permute.default, (image, [0, 3, 1, 2]))
    image.replace_all_uses_with(permuted, delete_user_cb=lambda user: user is not permuted)
    module.recompile()
    return module


def _module(job: ExportJob, program, plan):
    """What the converter converts: the program's module, or its int8 PT2E module (weights
    not folded: the converter reads their quantize ops), in eval mode, NHWC if asked."""
    from torchao.quantization.pt2e import move_exported_model_to_eval

    from casvit_deploy.export import int8
    from casvit_deploy.formats.litert import quantizer

    if plan is None:
        module = program.module()
    else:
        with _quiet():  # torchao's and litert-torch's import-time notes
            import litert_torch.quantize.pt2e_quantizer  # noqa: F401
        make = partial(quantizer.quantizer, plan.method)
        int8.search_pt2e(job, program, plan, make)
        module = int8.quantized_module(job, program, plan, make, fold=False)
    module = move_exported_model_to_eval(module)
    return channels_last_input(module) if job.options.input_layout is Layout.NHWC else module


def _convert(job: ExportJob, module, plan) -> bytes:
    from casvit_deploy.export.graph import example_input

    sample = example_input(job.batch, job.resolution, False)
    if job.options.input_layout is Layout.NHWC:
        sample = sample.permute(0, 2, 3, 1).contiguous()
    with _quiet(), temp_files_in(job.artifact.parent):
        import litert_torch

        from casvit_deploy.formats.litert import quantizer

        config = quantizer.converter_config(plan.method) if plan else None
        return bytes(litert_torch.convert(module, (sample,), quant_config=config).model_content())


def fp16_weights(data: bytes) -> bytes:
    """The file with its conv and linear weights stored as float16 (ai-edge-quantizer's
    float casting); each is dequantized to float32 at load, compute stays float32."""
    with _quiet():
        from ai_edge_quantizer import qtyping, quantizer
        from ai_edge_quantizer.algorithm_manager import AlgorithmName

        cast = quantizer.Quantizer(bytearray(data))
        cast.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                    algorithm_key=AlgorithmName.FLOAT_CASTING)
        return bytes(cast.quantize().quantized_model)


def _finalize(job: ExportJob, data: bytes, program) -> bytes:
    """Names: the interface's, and each block's output tensor named after its FX node."""
    from casvit_deploy.export.graph import block_outputs
    from casvit_deploy.formats.litert.blocks import block_tensors, module_chains
    from casvit_deploy.model.blocks import FINAL_OUTPUT

    wanted = {block: fx for block, fx in block_outputs(program, job.model).items()
              if block != FINAL_OUTPUT and fx not in job.output_names}
    found = block_tensors(flatbuffer.op_outputs(data), flatbuffer.tensor_names(data), module_chains(program),
                          list(wanted))
    renames = {tensor: wanted[block] for block, tensor in found.items()}
    return flatbuffer.finalize(data, [INPUT_NAME], list(job.output_names), renames, job.metadata)


def _require(census: dict, precision: Precision) -> None:
    """ExportError unless the file computes in what `precision` asks for."""
    expected = flatbuffer.EXPECTED[precision.value]
    if census["verdict"] == expected:
        return
    if census["verdict"] == "fake-int8":
        raise ExportError(f"the converter wrote a float file that only carries {census['quantize_dequantize_pairs']} "
                          "quantize/dequantize pairs (fake int8: no op computes in int8); it was not published")
    raise ExportError(f"the converter wrote a {census['verdict']} file, not {expected} "
                      f"({census['int8_compute_ops']} int8 and {census['float_compute_ops']} float compute ops)")


def _io_record(port: Port, side: str) -> dict:
    use = ("quantize the float image: q = clamp(round(x / scale) + zero_point, -128, 127), int8" if side == "input"
           else "dequantize: value = (q - zero_point) * scale")
    return port.record() | {"app": f"{use} (scale {port.scale:.9g}, zero point {port.zero_point})"}


def preprocessing(job: ExportJob):
    """The job's preprocessing, laid out as the file's input is."""
    layout = "NHWC" if job.options.input_layout is Layout.NHWC else "NCHW"
    return dataclasses.replace(job.preprocessing, layout=layout)


def _interface(job: ExportJob, inputs: list[Port], outputs: list[Port]):
    """The manifest's tensor specs (what the file itself says) and the int8 I/O record."""
    image, prepared = inputs[0], preprocessing(job)
    spec = job.input_spec(image.dtype)
    n, _, h, w = spec.shape
    records = {p.name: _io_record(p, side) for side, group in (("input", inputs), ("output", outputs))
               for p in group if p.quantized}
    spec = dataclasses.replace(spec, shape=(n, h, w, 3) if prepared.layout == "NHWC" else spec.shape,
                               layout=prepared.layout, description=_described(prepared.app_feeds,
                                                                              records.get(image.name)))
    specs = [dataclasses.replace(s, description=_described(s.description, records.get(s.name)))
             for s in job.output_specs({p.name: p.dtype for p in outputs})]
    return [spec], specs, records or None


def _described(text: str, record: dict | None) -> str:
    return text if record is None else f"{text}; then {record['app']}"


def _runtime(data: bytes, check) -> dict:
    return {"min_runtime_version": flatbuffer.min_runtime_version(data), "oldest_runtime_tested": OLDEST_RUNTIME_TESTED,
            "ran_here": check.runner}


def _describe(job: ExportJob, data: bytes, census: dict, check):
    """Inputs, outputs and details of the written file."""
    engine = interpreter(job.artifact, 1)
    inputs, outputs = ports(engine)
    specs, output_specs, io = _interface(job, inputs, outputs)
    cast = census["weights"].get("FLOAT16 -> DEQUANTIZE")
    fp16 = {"weights": cast, "by": "ai-edge-quantizer float casting (conv and linear weights)",
            "compute": "float32: each weight is dequantized once, at load"} if cast else None
    details = LiteRTDetails(ops=census, delegate=_partitions(engine), io_quantization=io,
                            runtime=_runtime(data, check), fp16_weights=fp16, load_check=check.to_dict())
    return specs, output_specs, details


def _partitions(engine) -> dict:
    from casvit_deploy.formats.litert.delegate import partitions

    return partitions(engine)


def _record(plan, check):
    from casvit_deploy.export import int8
    from casvit_deploy.formats.litert import quantizer
    from casvit_deploy.quantize.targets import RESIDUAL_ADDS

    if RESIDUAL_ADDS in plan.reasons:
        plan.reasons[RESIDUAL_ADDS] = "LiteRT's quantizer leaves the residual adds float (the stream stays float)"
    return int8.quantization_record(plan, quantizer.SCHEME, quantizer.config_record(plan.method), check)


def export_tflite(job: ExportJob) -> FormatOutput:
    """Convert, finalize, write, check what the file computes in, load-check, describe."""
    from casvit_deploy.export import int8
    from casvit_deploy.export.graph import export_program

    job.progress("export")
    program = export_program(job.model, job.batch, job.resolution, False)
    plan = int8.plan(job) if job.precision is Precision.INT8 else None
    module = _module(job, program, plan)
    job.progress("convert")
    data = _convert(job, module, plan)
    if job.precision is Precision.FP16:
        data = fp16_weights(data)
    job.artifact.write_bytes(_finalize(job, data, program))
    data = job.artifact.read_bytes()
    census = flatbuffer.census(data)
    _require(census, job.precision)
    job.progress("verify")
    check = job.check(job.artifact, program, images=plan.photographs if plan else None)
    if check.failures:
        raise ExportError(f"LiteRT output differs from eager PyTorch: {check.failures[0]}")
    inputs, outputs, details = _describe(job, data, census, check)
    return FormatOutput(program, inputs, outputs, details, preprocessing=preprocessing(job),
                        quantization=plan and _record(plan, check))
