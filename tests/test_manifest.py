"""The typed manifest: a round trip keeps every field, and every bad field is refused in
one line that names it (exit 2 at the CLI)."""

from __future__ import annotations

import json

import pytest

from casvit_deploy.errors import UsageError
from casvit_deploy.store import manifests
from casvit_deploy.store.manifests import ManifestError, manifest_path
from tests.manifest_helpers import minimal_manifest


def _saved(tmp_path, change=None):
    artifact = tmp_path / "a.onnx"
    artifact.write_bytes(b"")
    manifests.save(minimal_manifest(), artifact)
    if change:
        path = manifest_path(artifact)
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    return artifact


def test_round_trip_keeps_every_field(tmp_path):
    artifact = _saved(tmp_path)
    assert manifests.load(artifact) == minimal_manifest()
    assert manifests.find(tmp_path / "other.onnx") is None


def _set(path: str, value):
    def change(data):
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return change


@pytest.mark.parametrize("field, value, named", [
    ("resolution", "abc", "resolution"), ("resolution", 1e9, "resolution"), ("resolution", 100, "resolution"),
    ("resolution", KeyError, "resolution"), ("batch", "x", "batch"), ("batch", 0, "batch"), ("seed", 1e30, "seed"),
    ("seed", -1, "seed"), ("precision", ["fp32"], "precision"), ("precision", "int3", "precision"),
    ("outputs", 5, "outputs"), ("inputs.0.shape", [1, 3, "x" * 100], "inputs[0].shape"),
    ("preprocessing.mean", [0.5] * 10**5, "preprocessing.mean"), ("preprocessing.std", [0, 1, 1], "preprocessing.std"),
    ("variant", "xxl", "variant"), ("format", "tflite", "format"), ("sha256", "abc", "sha256"),
    ("checkpoint", {"path": "a.pth", "sha256": "z" * 64, "used_ema": False}, "checkpoint.sha256"),
    ("options", {"optset": 17}, "options.optset"), ("options", {"opset": 16}, "options"),
    ("options", {"opset": "17"}, "options.opset"), ("head", "softmax", "head"),
    ("preprocessing.normalized_by", "nobody", "preprocessing.normalized_by"),
    ("parity", [{"status": "maybe"}], "parity[0].status"),
    ("dynamic_batch", "yes", "dynamic_batch"), ("schema", 1, "schema"), ("form", "fast", "form"),
    ("resolution", {"height": 64}, "resolution.width"),
    ("resolution", {"height": 64, "width": 100}, "resolution.width"),
    ("preprocessing.crop", {"height": 64, "width": 0}, "preprocessing.crop.width"),
    ("outputs.0.stride", 0, "outputs[0].stride"), ("dynamic_shape", "yes", "dynamic_shape"),
])
def test_bad_fields_are_refused_naming_the_field(tmp_path, field, value, named):
    artifact = _saved(tmp_path, _set(field, value))
    with pytest.raises(ManifestError) as err:
        manifests.load(artifact)
    message = str(err.value)
    assert "\n" not in message and f"'{named}'" in message, message
    assert isinstance(err.value, UsageError) and err.value.exit_code == 2


@pytest.mark.parametrize("text, reason", [("", "not readable JSON"), ("[1, 2]", "must be an object"),
                                          ('{"a": ' * 10000, "not readable JSON")])
def test_not_a_manifest(tmp_path, text, reason):
    artifact = _saved(tmp_path)
    manifest_path(artifact).write_text(text)
    with pytest.raises(ManifestError, match=reason):
        manifests.load(artifact)


def _evaluation(**change):
    from casvit_deploy.artifacts.records import DatasetRecord, EvaluationRecord

    dataset = DatasetRecord("digits", "folder", 359, "1" * 64, 10)
    values = dict(sha256="0" * 64, dataset=dataset, top1=0.99, top5=1.0, reference_top1=0.9972,
                  reference_top5=1.0, drop_pp=0.72, ci95_pp=(-0.5, 2.0), agreement=0.99, engine="onnxruntime",
                  evaluated_at="2026-01-01T00:00:00+0000", max_top1_drop=0.5, passed=False)
    return EvaluationRecord(**values | change)


def test_evaluation_records_round_trip_and_are_appended_for_the_bytes_they_measured(tmp_path):
    from casvit_deploy.artifacts.manifest import MAX_EVALUATIONS
    from casvit_deploy.store.manifests import StaleRecord

    artifact = _saved(tmp_path)  # empty bytes: the sha256 below is of b""
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    for i in range(MAX_EVALUATIONS + 2):
        manifests.append_evaluation(artifact, _evaluation(sha256=empty, top1=i / 1000))
    saved = manifests.load(artifact)
    assert len(saved.evaluations) == MAX_EVALUATIONS and saved.latest_evaluation == _evaluation(
        sha256=empty, top1=(MAX_EVALUATIONS + 1) / 1000)
    with pytest.raises(StaleRecord, match="changed while it was checked"):
        manifests.append_evaluation(artifact, _evaluation())
    assert manifests.load(artifact) == saved


def test_schema_3_manifests_without_evaluations_are_read_and_schema_4_needs_the_list(tmp_path):
    artifact = _saved(tmp_path, lambda data: (data.pop("evaluations"), data.update(schema=3)))
    assert manifests.load(artifact).evaluations == [] and manifests.load(artifact).schema == 4
    with pytest.raises(ManifestError, match="'evaluations'"):
        manifests.load(_saved(tmp_path, lambda data: data.pop("evaluations")))


@pytest.mark.parametrize("field, value, named", [
    ("top1", 1.5, "evaluations[0].top1"), ("ci95_pp", [0], "evaluations[0].ci95_pp"),
    ("dataset", {"source": "x"}, "evaluations[0].dataset.kind"), ("passed", "yes", "evaluations[0].passed"),
    ("sha256", "abc", "evaluations[0].sha256"), ("drop_pp", float("nan"), "evaluations[0].drop_pp"),
])
def test_bad_evaluation_fields_are_refused_naming_the_field(tmp_path, field, value, named):
    def change(data):
        record = _evaluation().to_dict()
        record[field] = value
        data["evaluations"] = [record]

    with pytest.raises(ManifestError) as err:
        manifests.load(_saved(tmp_path, change))
    assert f"'{named}'" in str(err.value) and "\n" not in str(err.value)
