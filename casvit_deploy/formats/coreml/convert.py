"""CoreML conversion: an ML program `.mlpackage` converted from a `torch.export` program
(the work behind exporter.py, which checks the request first).

The deploy-form program is converted after `run_decompositions({})` (no TorchScript).
fp16 computation (every precision but fp32) is preceded by the fp16 pre-check
(fp16_check.py); `--fp16-safe` keeps the ops of the blocks it flags in fp32. Compression
(int8 or palettized weights, W8A8) follows conversion (compress.py).
With `image_input`, the app feeds RGB pixels 0-255: the ImageType scale/bias applies
x/255 - mean, and 1/std is folded into the stem's first conv (exact: the conv is linear
in each input channel and zero padding stays zero); the manifest then records that the
normalization is inside the model. With `labels` the package is a classifier: the program
ends in softmax and `classify`, whose outputs are the top label and the probability of
every class. An fp16 program's logits are cast to float32 inside the program unless
`fp16_output` is set. The saved package is read back into a MIL program and checked:
expected inputs/outputs and output dtype, a classifier's softmax, no batch_norm op, and
the load check (the MIL reference interpreter against eager).
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from casvit_deploy.artifacts.files import artifact_size
from casvit_deploy.artifacts.options import Int8Options
from casvit_deploy.artifacts.records import TensorSpec
from casvit_deploy.atomic import temp_files_in
from casvit_deploy.data.calibration import CalibrationSet, calibration_set
from casvit_deploy.data.images import GATE_RANDOM_SAMPLES, photo_batch, seeded_noise
from casvit_deploy.errors import ExportError
from casvit_deploy.export import int8
from casvit_deploy.export.base import ExportJob, FormatOutput
from casvit_deploy.export.graph import append_softmax, export_program
from casvit_deploy.export.labelled import LabelledImages, labelled_images, scores
from casvit_deploy.formats.coreml.compress import MIN_ELEMENTS, compress
from casvit_deploy.formats.coreml.compression import W8A8, Compression, compression_for, deployment_target, palettized
from casvit_deploy.formats.coreml.details import CoreMLDetails
from casvit_deploy.formats.coreml.fp16_budget import Fp16Choice, choose_fp16_blocks
from casvit_deploy.formats.coreml.fp16_check import Fp16Report, fp16_precheck, fp16_selector, keep_fp32_ops
from casvit_deploy.formats.coreml.labels import is_imagenet, read_labels
from casvit_deploy.formats.coreml.metadata import describe
from casvit_deploy.formats.coreml.mil.loader import load_mlpackage, program_of, tensor_spec
from casvit_deploy.formats.coreml.mil.preprocess import pixel_transform
from casvit_deploy.formats.coreml.options import CoreMLOptions
from casvit_deploy.formats.coreml.palette_choice import choose_palette
from casvit_deploy.formats.coreml.runner import package_scores
from casvit_deploy.runtime.eager import EagerRunner
from casvit_deploy.settings import IMAGENET_MEAN, IMAGENET_STD, INPUT_NAME, CalibrationMethod, Head, Precision

FORBIDDEN_OPS = ("batch_norm",)
BN_FOLDS = ("fold_conv_bn", "fold_prenorm_bn", "fold_head_norm", "fold_output_norms")
CLASSIFIER_OUTPUTS = ("classLabel", "classLabel_probs")  # coremltools' names: top label, probabilities


@torch.no_grad()
def fold_input_std(model: torch.nn.Module) -> torch.nn.Module:
    """A copy whose first conv takes (x - mean) instead of (x - mean) / std."""
    model = copy.deepcopy(model)
    conv = model.patch_embed[0]
    conv.weight.div_(torch.tensor(IMAGENET_STD, dtype=conv.weight.dtype).view(1, 3, 1, 1))
    return model


def _input_type(job: ExportJob, image_input: bool):
    import coremltools as ct

    shape = job.resolution.shape(job.batch)
    if image_input:
        return ct.ImageType(name=INPUT_NAME, shape=shape, scale=1 / 255.0, bias=[-m for m in IMAGENET_MEAN],
                            color_layout=ct.colorlayout.RGB)
    return ct.TensorType(name=INPUT_NAME, shape=shape, dtype=float)


def _logits_dtype(job: ExportJob) -> str:
    """float32, unless an fp16 program keeps float16 (`fp16_output`)."""
    return "float16" if job.precision is Precision.FP16 and job.options.fp16_output else "float32"


def _output_types(job: ExportJob, classifier: bool):
    """None for a classifier (coremltools names its outputs); else the model's outputs
    ("logits", or a backbone's feature maps) of `_logits_dtype`."""
    import coremltools as ct

    if classifier:
        return None
    return [ct.TensorType(name=name, dtype=np.dtype(_logits_dtype(job)).type) for name in job.output_names]


def _compute_precision(job: ExportJob, keep_fp32: set[str]):
    import coremltools as ct

    if job.precision is Precision.FP32:
        return ct.precision.FLOAT32
    if keep_fp32:
        return ct.transform.FP16ComputePrecision(op_selector=fp16_selector(keep_fp32))
    return ct.precision.FLOAT16


def _convert(job: ExportJob, model, labels: list[str] | None, keep_blocks: list[str]):
    """(the decomposed `torch.export` program of `model`, whose node names the MIL program
    keeps; the converted MLModel; the names of the ops kept in fp32, those of `keep_blocks`).
    A classifier converts a copy with softmax appended."""
    import coremltools as ct

    exported = export_program(model, job.batch, job.resolution, False)
    keep_fp32 = keep_fp32_ops(exported, model, keep_blocks) if keep_blocks else set()
    program = converted = exported.run_decompositions({})
    if labels:  # a second decomposition: the same node names (a deep copy would rename some)
        converted = exported.run_decompositions({})
        append_softmax(converted)
    job.progress("lower")
    with temp_files_in(job.artifact.parent):  # its weights and package, in the staging folder
        mlmodel = ct.convert(
            converted, convert_to="mlprogram", inputs=[_input_type(job, job.options.image_input)],
            outputs=_output_types(job, bool(labels)),
            classifier_config=ct.ClassifierConfig(labels) if labels else None,
            minimum_deployment_target=deployment_target(job.options.deployment_target),
            compute_precision=_compute_precision(job, keep_fp32), skip_model_load=True)
    return program, mlmodel, keep_fp32


def _classifier_tail(function) -> list[str]:
    """The non-const ops that end a classifier's program, from its softmax to `classify`."""
    ops = [op.op_type for op in function.operations if op.op_type != "const"]
    start = max((i for i, op in enumerate(ops) if op == "softmax"), default=len(ops))
    return ops[start:]


def _check_interface(inputs, outputs, function, job: ExportJob, classifier: bool) -> None:
    names = [o.name for o in outputs]
    expected = list(CLASSIFIER_OUTPUTS) if classifier else list(job.output_names)
    if [i.name for i in inputs] != [INPUT_NAME] or names != expected:
        raise ExportError(f"CoreML interface is {[i.name for i in inputs]} -> {names}, "
                          f"expected {INPUT_NAME} -> {', '.join(expected)}")
    tail = _classifier_tail(function)
    if classifier and not (tail[:1] == ["softmax"] and tail[-1:] == ["classify"] and set(tail) <= {
            "softmax", "cast", "classify"}):
        raise ExportError(f"the classifier program ends in {tail or 'no softmax'}, not softmax then classify")
    wrong = [o for o in outputs if o.dtype != _logits_dtype(job)] if not classifier else []
    if wrong:
        raise ExportError(f"CoreML output {wrong[0].name} is {wrong[0].dtype}, expected {_logits_dtype(job)}")


def _left_over(program, op_types: tuple[str, ...]) -> Counter:
    """Ops of `op_types` other than those producing a program output: coremltools fuses a
    backbone's output scale-and-shift (mul then add by per-channel constants, the deploy
    form of its output norms) into one batch_norm op, which is that same affine map."""
    counts: Counter = Counter()
    for fn in program.functions.values():
        outputs = {var.name for var in fn.outputs}
        for op in fn.operations:
            if op.op_type in op_types and not all(var.name in outputs for var in op.outputs):
                counts[op.op_type] += 1
    return counts


def inspect_package(path: Path, job: ExportJob, classifier: bool, deploy_form: bool = True) -> tuple[list, list, dict]:
    """Read the package back (as the runner does) and check its interface, output dtype, a
    classifier's softmax and its ops (no batch_norm when the deploy form's BN folds ran):
    (inputs, outputs, facts)."""
    package = load_mlpackage(path)
    spec, function = package.spec, package.program.functions["main"]
    ops = Counter(op.op_type for fn in package.program.functions.values() for op in fn.operations)
    left = _left_over(package.program, FORBIDDEN_OPS)
    bad = [op for op in FORBIDDEN_OPS if left.get(op)] if deploy_form else []
    if bad:
        raise ExportError(f"CoreML program still contains {', '.join(bad)}; the deploy rewrite did not apply")
    inputs = [tensor_spec(d, "NCHW", job.num_classes) for d in spec.description.input]
    outputs = [tensor_spec(d, "NC", job.num_classes) for d in spec.description.output]
    _check_interface(inputs, outputs, function, job, classifier)
    facts = {"mil_ops": dict(sorted(ops.items())), "spec_version": spec.specificationVersion}
    if classifier:
        facts["classifier"] = {"outputs": list(CLASSIFIER_OUTPUTS), "program_ends_in": _classifier_tail(function)}
    return inputs, outputs, facts


def _labels(job: ExportJob) -> list[str] | None:
    """The class labels of a classifier package (None: not a classifier; checked against the
    model by CoreMLExporter.check_model)."""
    options: CoreMLOptions = job.options
    return read_labels(options.labels, job.num_classes) if options.classifier else None


def _output_record(job: ExportJob, labels: list[str] | None) -> dict:
    """How the outputs were built, for the manifest."""
    if labels:
        source = "imagenet (ImageNet-1k class names)" if is_imagenet(job.options.labels) else str(job.options.labels)
        return {"classifier_labels": len(labels), "labels_source": source}
    if job.precision is Precision.FP16:
        cast = "float16 (as computed)" if job.options.fp16_output else "float32 (cast from float16 inside the program)"
        return {"output_dtype": cast}
    return {}


def _with_layouts(outputs: list[TensorSpec], job: ExportJob) -> list[TensorSpec]:
    """The package's output specs with each model output's layout and stride."""
    known = {o.name: o for o in job.outputs}
    return [dataclasses.replace(s, layout=known[s.name].layout, stride=known[s.name].stride)
            if s.name in known else s for s in outputs]


def _calibration(job: ExportJob) -> CalibrationSet:
    int8_options = job.options.int8 or Int8Options()
    job.progress("calibration data")
    return calibration_set(job.preprocessing, int8_options.calibration, int8_options.calibration_samples)


def _precheck(job: ExportJob, calibration: CalibrationSet) -> Fp16Report | None:
    if job.precision is Precision.FP32:
        return None
    job.progress("fp16 pre-check")
    return fp16_precheck(job.model, gate_inputs(job, calibration.images))


def gate_inputs(job: ExportJob, calibration: np.ndarray) -> np.ndarray:
    """The calibration images plus what the parity gate feeds by default (its seeded random
    set and the bundled photographs), so the pre-check sees every input the gate judges."""
    photos, _ = photo_batch(job.preprocessing)
    return np.concatenate([calibration, seeded_noise(job.resolution, GATE_RANDOM_SAMPLES), photos])


def _program_feeds(job: ExportJob, images: np.ndarray) -> np.ndarray:
    """What the program's input receives for preprocessed `images`."""
    if not job.options.image_input:
        return images
    return pixel_transform(job.preprocessing)(images).astype(np.float32)


def _fp16_safe_record(report: Fp16Report, kept_ops: set[str]) -> dict:
    reasons = {f.block: "; ".join(f.problems) for f in report.findings}
    return {"kept_fp32": reasons, "ops_kept_fp32": len(kept_ops)}


def _compression_record(compression: Compression, job: ExportJob, facts: dict, check) -> dict:
    ops = facts["mil_ops"]
    return compression.to_record() | {
        "package_bytes": artifact_size(job.artifact), "min_elements": MIN_ELEMENTS,
        "compressed_weights": sum(n for op, n in ops.items() if op.startswith("constexpr_")),
        "agreement": check.agreement | {"samples": check.samples, "set": "the calibration set's photographs"}}


def _compression_details(job: ExportJob, compression: Compression | None, report: Fp16Report | None,
                         kept_ops: set[str], facts: dict, check) -> dict:
    """The manifest's fp16 pre-check, fp16-safe and compression records (those that apply)."""
    details = {}
    if report is not None:
        details["fp16_precheck"] = report.to_dict()
    if job.options.fp16_safe:
        details["fp16_safe"] = _fp16_safe_record(report, kept_ops)
    if compression is not None:
        details["compression"] = _compression_record(compression, job, facts, check)
    return details


def _w8a8_record(calibration: CalibrationSet, check):
    plan = int8.Int8Plan(Int8Options(), CalibrationMethod.MINMAX, calibration, (), {})
    config = {"activations": "int8 linear symmetric, per tensor (coremltools insert_prefix/suffix_quantize_"
              "dequantize_pair)", "weights": "int8 linear symmetric, per output channel", "min_elements": MIN_ELEMENTS,
              "ranges": "min-max of every value over the calibration set, from the MIL reference interpreter"}
    return int8.quantization_record(plan, "coremltools W8A8", config, check)


def _labelled(job: ExportJob) -> LabelledImages | None:
    """The labelled images of a top-1 budget (--data), or None."""
    return labelled_images(job, job.options.data) if job.options.data is not None else None


def _fp16_blocks(job: ExportJob, report: Fp16Report | None, labelled: LabelledImages | None,
                 calibration: CalibrationSet | None) -> tuple[list[str], Fp16Choice | None]:
    """The blocks --fp16-safe keeps in fp32: those the pre-check flags or, with a top-1
    budget, those its search chooses (fp16_budget.py)."""
    if not (job.options.fp16_safe and report):
        return [], None
    if labelled is None:
        return report.flagged, None
    choice = choose_fp16_blocks(job, report, labelled, calibration.photographs, job.options.max_top1_drop)
    return list(choice.kept), choice


def _compressed(job: ExportJob, mlmodel, program, head: Head, compression: Compression | None,
                calibration: CalibrationSet | None, labelled: LabelledImages | None):
    """(the compressed model, its compression, --palettize auto's choice or None)."""
    if job.options.palettize_auto:
        with temp_files_in(job.artifact.parent):  # each trial is a temporary package
            choice = choose_palette(job, mlmodel, program, head, calibration.photographs, labelled,
                                    job.options.max_top1_drop)
        return choice.mlmodel, palettized(choice.bits), choice
    if compression is None:
        return mlmodel, None, None
    job.progress(f"compress ({compression.flag})")
    with temp_files_in(job.artifact.parent):  # each compressed model is a temporary package
        mlmodel = compress(mlmodel, compression, job.model, program_of, _program_feeds(job, calibration.images),
                           job.batch)
    return mlmodel, compression, None


def _package_top1(job: ExportJob, labelled: LabelledImages) -> dict:
    """The saved package's top-1 on the labelled images, against fp32 (its runner's engine)."""
    job.progress("top-1 of the package on the labelled images")
    reference = scores(EagerRunner(job.model).run, labelled.images)
    measured = labelled.judge(package_scores(job.artifact, job.preprocessing, labelled.images, job.batch), reference)
    return measured.summary()


def export_package(job: ExportJob) -> FormatOutput:
    """The package `job` asks for (already checked by CoreMLExporter.check), written,
    read back, load-checked and described."""
    options: CoreMLOptions = job.options
    labels = _labels(job)
    compression = compression_for(job.precision, options.palettize)
    preprocessing = dataclasses.replace(job.preprocessing, in_model=options.image_input)
    head = Head.CLASSIFIER if labels else Head.LOGITS
    lossy = job.precision is not Precision.FP32 or compression or options.palettize_auto
    calibration = _calibration(job) if lossy else None
    labelled = _labelled(job)
    report = _precheck(job, calibration)
    keep, fp16_choice = _fp16_blocks(job, report, labelled, calibration)
    job.progress("export")
    model = fold_input_std(job.model) if options.image_input else job.model
    program, mlmodel, kept_ops = _convert(job, model, labels, keep)
    mlmodel, compression, palette = _compressed(job, mlmodel, program, head, compression, calibration, labelled)
    describe(mlmodel, job, preprocessing, labels)
    mlmodel.save(str(job.artifact))
    job.progress("verify")
    passes = job.metadata.get("passes", "").split(",")
    inputs, outputs, facts = inspect_package(job.artifact, job, bool(labels), all(p in passes for p in BN_FOLDS))
    outputs = _with_layouts(outputs, job)
    how = {} if compression is None else {"images": calibration.photographs, "lossy": True}
    check = job.check(job.artifact, program, head, **how)
    if check.failures:
        hint = f"; {report.summary()} (--fp16-safe keeps them in fp32)" if report and report.findings else ""
        raise ExportError(f"CoreML output differs from eager PyTorch: {check.failures[0]}{hint}")
    details = _compression_details(job, compression, report, kept_ops, facts, check)
    if fp16_choice is not None:
        details["fp16_safe"] = fp16_choice.record(len(kept_ops)) | {"package": _package_top1(job, labelled)}
    if palette is not None:
        details["compression"]["choice"] = palette.record()
    details = CoreMLDetails(**_output_record(job, labels), **facts, load_check=check.to_dict(), **details)
    record = _w8a8_record(calibration, check) if compression is W8A8 else None
    return FormatOutput(program, inputs, outputs, details, head=head, preprocessing=preprocessing,
                        notes=[report.summary()] if report else [], quantization=record)
