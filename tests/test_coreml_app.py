"""CoreML packages that drop into an app: a classifier whose program ends in softmax and
`classify` and passes parity against eager softmax, the ImageNet-1k labels, the metadata
Xcode shows, a float32 output for fp16 programs, and an image-input manifest that says the
model normalizes (read back with coremltools' spec reader and run by the MIL interpreter)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from casvit_deploy.errors import UsageError
from casvit_deploy.formats.coreml.labels import imagenet_labels, read_labels
from casvit_deploy.formats.coreml.mil import OPS, load_mlpackage
from casvit_deploy.formats.coreml.options import CoreMLOptions
from casvit_deploy.model import load_model
from casvit_deploy.pipeline import export_model
from casvit_deploy.pipeline.gate import parity_gate
from casvit_deploy.store import manifests
from casvit_deploy.store.manifests import manifest_path
from casvit_deploy.store.runners import open_runner

RES = 32
APP = dict(author="Jane Appleseed", license="Apache-2.0", version="2.1.0", description="Recognizes 1000 objects")


@pytest.fixture(scope="module")
def loaded():
    return load_model(variant="xs", seed=1)


@pytest.fixture(scope="module")
def classifier(loaded, tmp_path_factory):
    """An fp16 image-input ImageNet classifier, published through the parity gate."""
    options = CoreMLOptions(image_input=True, labels=Path("imagenet"), **APP)
    return export_model(loaded, "coreml", tmp_path_factory.mktemp("classifier"), resolution=RES, precision="fp16",
                        options=options, gate=parity_gate(loaded))


def _ops(path: Path) -> list[str]:
    program = load_mlpackage(path).program
    return [op.op_type for op in program.functions["main"].operations if op.op_type != "const"]


def test_classifier_program_ends_in_softmax_then_classify(classifier):
    ops = _ops(classifier.artifact)
    assert ops[-3:] == ["softmax", "cast", "classify"] and ops[-4] == "linear"
    assert set(ops) <= set(OPS)  # the reference interpreter runs every op of it
    assert classifier.manifest.details.classifier["program_ends_in"] == ["softmax", "cast", "classify"]


def test_classifier_passes_parity_against_eager_softmax(classifier):
    """Published only after the gate passed; its record compares probabilities and labels."""
    record = classifier.manifest.latest_parity
    assert classifier.gate is record and record.status == "pass" and record.sha256 == classifier.manifest.sha256
    assert record.report["artifact"] == str(classifier.artifact)  # named by its final path, not the staging one
    for input_set in record.report["input_sets"]:
        outputs = {o["name"]: o for o in input_set["outputs"]}
        assert set(outputs) == {"probabilities", "label"}
        assert outputs["label"]["top1_agreement"] == 1.0 and outputs["label"]["max_abs"] is None
        assert outputs["probabilities"]["max_abs"] < 5e-3 and outputs["probabilities"]["ref_max_abs"] <= 1.0


def test_classifier_runner_reports_probabilities_and_label(classifier, loaded):
    import torch

    image = np.random.default_rng(4).standard_normal((1, 3, RES, RES)).astype(np.float32)
    with open_runner(classifier.artifact) as runner:
        out = runner.run(image)
    want = torch.softmax(loaded.model(torch.from_numpy(image)), dim=-1).detach().numpy()
    assert set(out) == {"probabilities", "label"}
    np.testing.assert_allclose(out["probabilities"].sum(), 1.0, atol=2e-3)
    np.testing.assert_allclose(out["probabilities"], want, atol=5e-3)
    assert out["label"].tolist() == [int(want.argmax())]


def test_imagenet_labels_are_the_classes_of_the_package(classifier):
    labels = imagenet_labels()
    assert len(labels) == len(set(labels)) == 1000
    assert (labels[0], labels[1], labels[207], labels[999]) == ("tench", "goldfish", "golden retriever",
                                                                "toilet tissue")
    with open_runner(classifier.artifact) as runner:
        assert runner.class_labels == labels
    metadata = load_mlpackage(classifier.artifact).spec.description.metadata.userDefined
    assert json.loads(metadata["classes"]) == labels
    assert classifier.manifest.details.labels_source.startswith("imagenet")


def test_every_input_and_output_is_described_for_xcode(classifier):
    spec = load_mlpackage(classifier.artifact).spec
    described = {d.name: d.shortDescription for d in [*spec.description.input, *spec.description.output]}
    assert set(described) == {"image", "classLabel", "classLabel_probs"} and all(described.values())
    assert "RGB" in described["image"] and f"{RES}x{RES}" in described["image"] and "0-255" in described["image"]
    assert "probability" in described["classLabel_probs"] and "label" in described["classLabel"]
    assert [s.description for s in classifier.manifest.inputs] == [described["image"]]


def test_metadata_set_from_options_and_xcode_preview(classifier):
    spec = load_mlpackage(classifier.artifact).spec
    meta = spec.description.metadata
    assert (meta.author, meta.license, meta.versionString, meta.shortDescription) == (
        APP["author"], APP["license"], APP["version"], APP["description"])
    assert meta.userDefined["com.apple.coreml.model.preview.type"] == "imageClassifier"
    assert "mean" not in meta.userDefined and "inside the model" in meta.userDefined["normalization"]
    assert spec.description.predictedFeatureName == "classLabel"
    assert spec.description.predictedProbabilitiesName == "classLabel_probs"


def test_image_input_manifest_says_the_model_normalizes(classifier):
    data = json.loads(manifest_path(classifier.artifact).read_text())["preprocessing"]
    assert data["normalized_by"] == "model" and "do not normalize" in data["app_feeds"]
    assert not {"mean", "std", "scale"} & set(data)  # no bare mean/std inviting a second normalization
    assert data["in_model"]["mean"] == [0.485, 0.456, 0.406]
    assert manifests.load(classifier.artifact).preprocessing.in_model


def test_fp16_program_outputs_float32_by_default(small_export):
    result = small_export("coreml")
    spec = load_mlpackage(result.artifact).spec
    assert spec.description.output[0].type.multiArrayType.dataType == 65568  # FLOAT32
    assert _ops(result.artifact)[-2:] == ["linear", "cast"]
    assert result.manifest.outputs[0].dtype == "float32"
    assert result.manifest.details.output_dtype.startswith("float32 (cast from float16 inside the program)")
    with open_runner(result.artifact) as runner:
        assert runner.run(np.zeros((1, 3, RES, RES), np.float32))["logits"].dtype == np.float32


def test_fp16_output_keeps_float16(loaded, tmp_path):
    result = export_model(loaded, "coreml", tmp_path, resolution=RES, precision="fp16",
                          options=CoreMLOptions(fp16_output=True))
    spec = load_mlpackage(result.artifact).spec
    assert spec.description.output[0].type.multiArrayType.dataType == 65552  # FLOAT16
    assert result.manifest.outputs[0].dtype == "float16" and _ops(result.artifact)[-1] == "linear"
    assert result.manifest.details.output_dtype == "float16 (as computed)"


def test_labels_file_classifier_in_fp32_tensor_input(loaded, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"thing {i}\n" for i in range(1000)))
    result = export_model(loaded, "coreml", tmp_path, resolution=RES, precision="fp32",
                          options=CoreMLOptions(labels=labels), gate=parity_gate(loaded))
    assert result.gate.status == "pass" and _ops(result.artifact)[-2:] == ["softmax", "classify"]
    meta = load_mlpackage(result.artifact).spec.description.metadata.userDefined
    assert "com.apple.coreml.model.preview.type" not in meta  # Xcode's preview needs an image input
    assert result.manifest.preprocessing.in_model is False and result.manifest.head.value == "classifier"


@pytest.mark.parametrize("text, message", [("a\nb\n", "has 2 labels, the model has 1000"),
                                           ("".join(f"x{i % 999}\n" for i in range(1000)), "'x0' 2 times")])
def test_bad_labels_files(tmp_path, text, message):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        read_labels(path, 1000)
