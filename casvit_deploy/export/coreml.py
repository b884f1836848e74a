"""CoreML export: an ML program `.mlpackage` converted from a `torch.export` program.

The deploy-form program is converted after `run_decompositions({})` (no TorchScript).
With `image_input`, the app feeds RGB pixels 0-255: the ImageType scale/bias applies
x/255 - mean, and 1/std is folded into the stem's first conv (exact: the conv is linear
in each input channel and zero padding stays zero). The saved package is read back into
a MIL program and checked: expected inputs/outputs, and no batch_norm op.
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import torch

from casvit_deploy.errors import ExportError, UsageError
from casvit_deploy.export.base import ExportJob, FormatOutput
from casvit_deploy.export.graph import FINAL_OUTPUT, block_outputs, export_program
from casvit_deploy.model import IMAGENET_MEAN, IMAGENET_STD

DEFAULT_TARGET = "iOS16"
MIN_VERSIONS = {"iOS": 16, "macOS": 13, "tvOS": 16, "watchOS": 9}
FORBIDDEN_OPS = ("batch_norm",)
BN_FOLDS = ("fold_conv_bn", "fold_prenorm_bn", "fold_head_norm")
FP16_SUFFIX = "_cast_fp16"  # coremltools names fp16 variables <fx name>_cast_fp16
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

    shape = (job.batch, 3, job.resolution, job.resolution)
    if image_input:
        return ct.ImageType(name="image", shape=shape, scale=1 / 255.0, bias=[-m for m in IMAGENET_MEAN],
                            color_layout=ct.colorlayout.RGB)
    return ct.TensorType(name="image", shape=shape, dtype=float)


def _convert(job: ExportJob, model, image_input: bool, labels: list[str] | None):
    import coremltools as ct

    program = export_program(model, job.batch, job.resolution, False).run_decompositions({})
    job.progress("lower")
    precision = ct.precision.FLOAT16 if job.precision == "fp16" else ct.precision.FLOAT32
    mlmodel = ct.convert(
        program, convert_to="mlprogram", inputs=[_input_type(job, image_input)],
        outputs=None if labels else [ct.TensorType(name="logits")],
        classifier_config=ct.ClassifierConfig(labels) if labels else None,
        minimum_deployment_target=deployment_target(job.options.get("deployment_target") or DEFAULT_TARGET),
        compute_precision=precision, skip_model_load=True)
    return program, mlmodel


def _describe(mlmodel, job: ExportJob) -> None:
    mlmodel.short_description = (f"CAS-ViT-{job.metadata.get('variant', '').upper()} image classifier "
                                 f"({job.resolution}x{job.resolution}, {job.metadata.get('weights', '')})")
    mlmodel.author, mlmodel.license = INFO["author"], INFO["license"]
    mlmodel.version = job.metadata.get("version_casvit-deploy", "")
    mlmodel.user_defined_metadata.update({k: v for k, v in job.metadata.items() if v})


def read_back(path: Path):
    """The saved package as (spec, MIL program with weights), read without macOS."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    spec = mlmodel.get_spec()
    return spec, load(spec, spec.specificationVersion, mlmodel.weights_dir)


def _feature(desc, layout: str) -> dict:
    kind = desc.type.WhichOneof("Type")
    if kind == "imageType":
        t = desc.type.imageType
        return {"name": desc.name, "shape": [1, 3, t.height, t.width], "dtype": "uint8 image (RGB 0-255)",
                "layout": "NCHW"}
    if kind == "multiArrayType":
        t = desc.type.multiArrayType
        dtype = {65552: "float16", 65568: "float32", 65600: "float64", 131104: "int32"}.get(t.dataType, str(t.dataType))
        return {"name": desc.name, "shape": list(t.shape), "dtype": dtype, "layout": layout}
    return {"name": desc.name, "shape": None, "dtype": kind, "layout": None}


def verify(path: Path, labels: list[str] | None, blocks: dict[str, str], deploy_form: bool = True) -> dict:
    """Read the package back and check its interface and ops (no batch_norm when the deploy
    form's BN folds ran); facts for the manifest, including which block-output FX names
    survive as MIL variable names (the final output survives renamed "logits")."""
    spec, program = read_back(path)
    operations = [op for fn in program.functions.values() for op in fn.operations]
    ops = Counter(op.op_type for op in operations)
    variables = {out.name.removesuffix(FP16_SUFFIX) for op in operations for out in op.outputs}
    kept = [block for block, name in blocks.items() if name in variables or block == FINAL_OUTPUT]
    bad = [op for op in FORBIDDEN_OPS if ops.get(op)] if deploy_form else []
    if bad:
        raise ExportError(f"CoreML program still contains {', '.join(bad)}; the deploy rewrite did not apply")
    inputs = [_feature(d, "NCHW") for d in spec.description.input]
    outputs = [_feature(d, "NC") for d in spec.description.output]
    if [i["name"] for i in inputs] != ["image"] or (not labels and [o["name"] for o in outputs] != ["logits"]):
        raise ExportError(f"CoreML interface is {inputs} -> {outputs}, expected image -> logits")
    return {"inputs": inputs, "outputs": outputs, "mil_ops": dict(sorted(ops.items())),
            "block_outputs_as_mil_vars": f"{len(kept)}/{len(blocks)}",
            "block_outputs_missing_in_mil": [b for b in blocks if b not in kept],
            "spec_version": spec.specificationVersion}


class CoreMLExporter:
    format = "coreml"
    suffix = ".mlpackage"
    requires = (("coremltools", "coremltools"),)
    precisions = ("fp16", "fp32")

    def export(self, job: ExportJob) -> FormatOutput:
        if job.dynamic_batch:
            raise UsageError("CoreML export takes a fixed batch; drop --dynamic-batch for coreml")
        target = job.options.get("deployment_target") or DEFAULT_TARGET
        deployment_target(target)
        image_input = bool(job.options.get("image_input"))
        labels = read_labels(job.options["labels"], job.num_classes) if job.options.get("labels") else None
        job.progress("export")
        model = fold_input_std(job.model) if image_input else job.model
        program, mlmodel = _convert(job, model, image_input, labels)
        _describe(mlmodel, job)
        mlmodel.save(str(job.artifact))
        job.progress("verify")
        passes = job.metadata.get("passes", "").split(",")
        folded = all(p in passes for p in BN_FOLDS)
        facts = verify(job.artifact, labels, block_outputs(program, job.model), deploy_form=folded)
        return FormatOutput(program, facts.pop("inputs"), facts.pop("outputs"), {
            "format": self.format, "deployment_target": target, "compute_precision": job.precision,
            "image_input": image_input, "classifier_labels": len(labels) if labels else None, **facts})
