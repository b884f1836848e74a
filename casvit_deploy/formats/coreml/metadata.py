"""What an app developer sees of a CoreML package in Xcode: its description, author,
license and version (settable through CoreMLOptions), a description of every input and
output, Xcode's image-classifier preview and the class labels of a classifier."""

from __future__ import annotations

import json

from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.export.base import ExportJob
from casvit_deploy.export.describe import input_text, output_text
from casvit_deploy.formats.coreml.options import CoreMLOptions

DEFAULT_AUTHOR = "casvit-deploy (CAS-ViT, arXiv 2408.03703)"
DEFAULT_LICENSE = "see the checkpoint's license"
PREVIEW_KEY = "com.apple.coreml.model.preview.type"
CLASSES_KEY = "classes"  # user metadata: the class labels as a JSON list, in class-index order


def _summary(job: ExportJob, classifier: bool) -> str:
    what = ("image classifier (probabilities and top label)" if classifier else "image model (class logits)"
            if job.num_classes else f"dense-prediction backbone ({', '.join(job.output_names)})")
    return (f"CAS-ViT-{job.metadata.get('variant', '').upper()} {what}, "
            f"{job.resolution.height}x{job.resolution.width}, {job.precision.value}, {job.metadata.get('weights', '')}")


def _output_kinds(names: list[str], classifier: bool) -> dict[str, str]:
    """Output name -> "logits", "label", "probabilities" (a classifier's label comes first) or
    the feature map's own name."""
    if classifier:
        return dict(zip(names, ("label", "probabilities")))
    return {name: name for name in names}


def describe(mlmodel, job: ExportJob, preprocessing: Preprocessing, labels: list[str] | None) -> None:
    """Set the description, author, license, version, input and output descriptions and user
    metadata of `mlmodel` (before it is saved)."""
    options: CoreMLOptions = job.options
    mlmodel.short_description = options.description or _summary(job, labels is not None)
    mlmodel.author = options.author or DEFAULT_AUTHOR
    mlmodel.license = options.license or DEFAULT_LICENSE
    mlmodel.version = options.version or job.metadata.get("version_casvit-deploy", "")
    spec = mlmodel.get_spec()
    for desc in spec.description.input:
        mlmodel.input_description[desc.name] = input_text(preprocessing)
    names = [desc.name for desc in spec.description.output]
    for name, kind in _output_kinds(names, labels is not None).items():
        stride = next((o.stride for o in job.outputs if o.name == name), None)
        mlmodel.output_description[name] = output_text(kind, job.num_classes, stride)
    metadata = {k: v for k, v in job.metadata.items() if v}
    if preprocessing.in_model:  # no bare mean/std that invite normalizing twice
        metadata = {k: v for k, v in metadata.items() if k not in ("mean", "std")} | {
            "normalization": "inside the model: feed RGB pixels 0-255 as they are"}
    if labels is not None:
        metadata[CLASSES_KEY] = json.dumps(labels)
        if options.image_input:  # Xcode's preview feeds an image, so only an image input can have it
            metadata[PREVIEW_KEY] = "imageClassifier"
    mlmodel.user_defined_metadata.update(metadata)
