"""CoreML export: an ML program `.mlpackage` converted from a `torch.export` program.

The deploy-form program is converted after `run_decompositions({})` (no TorchScript).
With `image_input`, the app feeds RGB pixels 0-255: the ImageType scale/bias applies
x/255 - mean, and 1/std is folded into the stem's first conv (exact: the conv is linear
in each input channel and zero padding stays zero). The saved package is read back into
a MIL program and checked: expected inputs/outputs, no batch_norm op, and the load check
(the MIL reference interpreter against eager).
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from pathlib import Path

import torch

from casvit_deploy.artifacts.manifest import TensorSpec
from casvit_deploy.artifacts.options import CoreMLOptions
from casvit_deploy.errors import ExportError, UsageError
from casvit_deploy.export.base import ExportJob, FormatOutput
from casvit_deploy.export.graph import export_program
from casvit_deploy.model.variants import IMAGENET_MEAN, IMAGENET_STD
from casvit_deploy.runtime.mil.loader import load_mlpackage
from casvit_deploy.settings import Precision

MIN_VERSIONS = {"iOS": 16, "macOS": 13, "tvOS": 16, "watchOS": 9}
FORBIDDEN_OPS = ("batch_norm",)
BN_FOLDS = ("fold_conv_bn", "fold_prenorm_bn", "fold_head_norm", "fold_output_norms")
INFO = {"author": "casvit-deploy (CAS-ViT, arXiv 2408.03703)", "license": "see the checkpoint's license"}


def deployment_target(name: str):
    """The coremltools target called `name` (iOS16 or newer, macOS13 or newer)."""
    import coremltools as ct

    for platform, minimum in MIN_VERSIONS.items():
        version = name[len(platform):] if name.lower().startswith(platform.lower()) else ""
        if version.isdigit() and int(version) >= minimum and hasattr(ct.target, f"{platform}{version}"):
            return getattr(ct.target, f"{platform}{version}")
    raise UsageError(f"unknown or too old deployment target {name!r}: use iOS16 or newer (e.g. iOS17, macOS14)")


def read_labels(path: Path, num_classes: int) -> list[str]:
    try:
        labels = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read labels file {path}: {err}") from None
    if len(labels) != num_classes:
        raise UsageError(f"labels file {path} has {len(labels)} labels, the model has {num_classes} classes")
    return labels


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
        return ct.ImageType(name="image", shape=shape, scale=1 / 255.0, bias=[-m for m in IMAGENET_MEAN],
                            color_layout=ct.colorlayout.RGB)
    return ct.TensorType(name="image", shape=shape, dtype=float)


def _convert(job: ExportJob, model, image_input: bool, labels: list[str] | None):
    import coremltools as ct

    program = export_program(model, job.batch, job.resolution, False).run_decompositions({})
    job.progress("lower")
    precision = ct.precision.FLOAT16 if job.precision is Precision.FP16 else ct.precision.FLOAT32
    mlmodel = ct.convert(
        program, convert_to="mlprogram", inputs=[_input_type(job, image_input)],
        outputs=None if labels else [ct.TensorType(name=name) for name in job.output_names],
        classifier_config=ct.ClassifierConfig(labels) if labels else None,
        minimum_deployment_target=deployment_target(job.options.deployment_target),
        compute_precision=precision, skip_model_load=True)
    return program, mlmodel


def _describe(mlmodel, job: ExportJob) -> None:
    size = f"{job.resolution.height}x{job.resolution.width}"
    kind = "image classifier" if job.num_classes else f"dense-prediction backbone ({', '.join(job.output_names)})"
    mlmodel.short_description = (f"CAS-ViT-{job.metadata.get('variant', '').upper()} {kind} "
                                 f"({size}, {job.metadata.get('weights', '')})")
    mlmodel.author, mlmodel.license = INFO["author"], INFO["license"]
    mlmodel.version = job.metadata.get("version_casvit-deploy", "")
    mlmodel.user_defined_metadata.update({k: v for k, v in job.metadata.items() if v})


def _spec(desc, layout: str) -> TensorSpec:
    kind = desc.type.WhichOneof("Type")
    if kind == "imageType":
        t = desc.type.imageType
        return TensorSpec(desc.name, (1, 3, t.height, t.width), "uint8 image (RGB 0-255)", "NCHW")
    if kind == "multiArrayType":
        t = desc.type.multiArrayType
        dtype = {65552: "float16", 65568: "float32", 65600: "float64", 131104: "int32"}.get(t.dataType, str(t.dataType))
        return TensorSpec(desc.name, tuple(t.shape), dtype, layout)
    return TensorSpec(desc.name, (), kind, None)


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


def inspect_package(path: Path, labels: list[str] | None, deploy_form: bool = True,
                    output_names: tuple[str, ...] = ("logits",)) -> tuple[list, list, dict]:
    """Read the package back (as the runner does) and check its interface and ops (no
    batch_norm when the deploy form's BN folds ran): (inputs, outputs, facts)."""
    package = load_mlpackage(path)
    spec = package.spec
    ops = Counter(op.op_type for fn in package.program.functions.values() for op in fn.operations)
    left = _left_over(package.program, FORBIDDEN_OPS)
    bad = [op for op in FORBIDDEN_OPS if left.get(op)] if deploy_form else []
    if bad:
        raise ExportError(f"CoreML program still contains {', '.join(bad)}; the deploy rewrite did not apply")
    inputs = [_spec(d, "NCHW") for d in spec.description.input]
    outputs = [_spec(d, "NC") for d in spec.description.output]
    if [i.name for i in inputs] != ["image"] or (not labels and [o.name for o in outputs] != list(output_names)):
        raise ExportError(f"CoreML interface is {[i.name for i in inputs]} -> {[o.name for o in outputs]}, "
                          f"expected image -> {', '.join(output_names)}")
    return inputs, outputs, {"mil_ops": dict(sorted(ops.items())), "spec_version": spec.specificationVersion}


def _with_layouts(outputs: list[TensorSpec], job: ExportJob) -> list[TensorSpec]:
    """The package's output specs with each model output's layout and stride."""
    known = {o.name: o for o in job.outputs}
    return [dataclasses.replace(s, layout=known[s.name].layout, stride=known[s.name].stride)
            if s.name in known else s for s in outputs]


class CoreMLExporter:
    def export(self, job: ExportJob) -> FormatOutput:
        options: CoreMLOptions = job.options
        if job.dynamic_batch:
            raise UsageError("CoreML export takes a fixed batch; drop --dynamic-batch for coreml")
        deployment_target(options.deployment_target)
        if options.labels and not job.num_classes:
            raise UsageError("--labels makes a classifier; a dense-prediction backbone has no classes")
        labels = read_labels(options.labels, job.num_classes) if options.labels else None
        job.progress("export")
        model = fold_input_std(job.model) if options.image_input else job.model
        program, mlmodel = _convert(job, model, options.image_input, labels)
        _describe(mlmodel, job)
        mlmodel.save(str(job.artifact))
        job.progress("verify")
        passes = job.metadata.get("passes", "").split(",")
        inputs, outputs, facts = inspect_package(job.artifact, labels, all(p in passes for p in BN_FOLDS),
                                                 job.output_names)
        outputs = _with_layouts(outputs, job)
        check = job.check(job.artifact, program)
        if check.failures:
            raise ExportError(f"CoreML output differs from eager PyTorch: {check.failures[0]}")
        return FormatOutput(program, inputs, outputs, {
            "classifier_labels": len(labels) if labels else None, **facts, "load_check": check.to_dict()})
