"""Parity building blocks without artifacts: metrics, verdict, inputs, reference runner, writers."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from casvit_deploy.artifacts.files import artifact_sha256
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.artifacts.records import ParityRecord
from casvit_deploy.errors import UsageError
from casvit_deploy.formats import format_for_path
from casvit_deploy.model import random_model
from casvit_deploy.model.blocks import block_names
from casvit_deploy.numerics import (
    DEFAULTS,
    ThresholdOverrides,
    compare,
    defaults_for,
    metric_failures,
    structural_failures,
    topk_agreement,
)
from casvit_deploy.parity.execute import run_all
from casvit_deploy.parity.inputs import build_input_sets, preprocess
from casvit_deploy.parity.report import InputSetResult, ParityReport
from casvit_deploy.parity.writers import junit_tree
from casvit_deploy.runtime.eager import EagerRunner
from casvit_deploy.settings import Precision
from casvit_deploy.store import manifests
from casvit_deploy.store.manifests import ManifestError, manifest_path
from tests.manifest_helpers import minimal_manifest


def test_identical_outputs_have_zero_error_and_infinite_snr():
    ref = np.random.default_rng(0).standard_normal((3, 10)).astype(np.float32)
    m = compare("logits", ref.copy(), ref)
    assert (m.max_abs, m.mean_abs, m.top1_agreement, m.top5_overlap) == (0.0, 0.0, 1.0, 1.0)
    assert m.cosine == pytest.approx(1.0) and math.isinf(m.snr_db)
    assert m.to_dict()["snr_db"] == "inf"
    assert metric_failures(m, DEFAULTS["fp32"]) == []


def test_metrics_of_a_known_perturbation():
    ref = np.zeros((2, 4), np.float32)
    ref[:, 0] = [4.0, 2.0]
    out = ref.copy()
    out[1, 0], out[1, 3] = 1.0, 3.0  # sample 1 now prefers class 3
    m = compare("logits", out, ref)
    assert m.max_abs == 3.0 and m.max_rel == pytest.approx(0.75)
    assert m.mean_abs == pytest.approx(4.0 / 8)
    assert m.top1_agreement == 0.5
    assert m.snr_db == pytest.approx(10 * math.log10(20 / 10))
    assert m.cosine == pytest.approx(1 / math.sqrt(10))
    failures = metric_failures(m, DEFAULTS["fp32"])
    assert len(failures) == 3 and any("top-1" in f for f in failures)


def test_topk_overlap_counts_shared_classes():
    ref = np.array([[9, 8, 7, 6, 5, 0, 0.0]])
    out = np.array([[9, 8, 7, 0, 0, 6, 5.0]])
    assert topk_agreement(out, ref) == (1.0, pytest.approx(3 / 5))


def test_nan_is_a_failure_even_when_other_metrics_are_nan():
    ref = np.ones((1, 5), np.float32)
    out = ref.copy()
    out[0, 2] = np.nan
    failures = metric_failures(compare("logits", out, ref), DEFAULTS["fp16"])
    assert any("NaN/Inf" in f for f in failures) and any("max abs" in f for f in failures)


def test_structural_checks_report_names_shapes_and_dtypes():
    ref = {"logits": np.zeros((1, 10), np.float32)}
    assert structural_failures({"logits": np.zeros((1, 10), np.float16)}, ref) == []
    failures = structural_failures({"scores": np.zeros((1, 10), np.int64)}, ref)
    assert any("'logits' missing" in f for f in failures) and any("unexpected output 'scores'" in f for f in failures)
    assert "shape" in structural_failures({"logits": np.zeros((1, 9), np.float32)}, ref)[0]
    assert "dtype" in structural_failures({"logits": np.zeros((1, 10), np.int32)}, ref)[0]


def test_thresholds_depend_on_precision_and_can_be_overridden():
    assert defaults_for(Precision.FP16).atol > defaults_for(Precision.FP32).atol
    assert all(defaults_for(p) for p in Precision)  # every precision has its defaults
    assert defaults_for(Precision.W8A8) is defaults_for(Precision.INT8) is defaults_for(Precision.FP16, lossy=True)
    changed = ThresholdOverrides(atol=0.5, rtol=None).apply(DEFAULTS[Precision.FP32])
    assert changed.atol == 0.5 and changed.rtol == DEFAULTS[Precision.FP32].rtol


@pytest.mark.parametrize("bad", [{"atol": float("nan")}, {"rtol": -1.0}, {"min_cosine": 1.5}, {"min_top1": -0.1}])
def test_threshold_overrides_are_checked_when_made(bad):
    with pytest.raises(UsageError, match="must be"):
        ThresholdOverrides(**bad)


def test_preprocess_crops_below_384_and_warps_from_384():
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, :100] = 255  # white left third: cropped away below 384, kept when warping
    assert preprocess(wide, Preprocessing.for_resolution(64)).shape == (3, 64, 64)
    cropped, warped = preprocess(wide, Preprocessing.for_resolution(64)), preprocess(wide, Preprocessing.for_resolution(384))
    white = (1 - 0.485) / 0.229
    assert cropped[0].max() < white - 1 and warped[0, :, 0].min() == pytest.approx(white, abs=1e-3)


def test_input_sets_are_seeded_and_include_bundled_photographs():
    first, photos = build_input_sets("both", 64, samples=None)
    again = build_input_sets("random", 64)[0]
    assert np.array_equal(first.images, again.images) and first.images.shape == (4, 3, 64, 64)
    assert photos.images.shape[0] >= 14 and all(s.startswith("skimage.data.") for s in photos.sources)
    assert 0.5 < photos.images.std() < 1.5  # normalized like ImageNet


@pytest.mark.parametrize("kind, kwargs, message", [
    ("noise", {}, "choose one of"),
    ("random", {"samples": 0}, "from 1 to"),
    ("images", {"images_dir": "/nonexistent"}, "not a folder"),
])
def test_bad_input_options_are_usage_errors(kind, kwargs, message):
    with pytest.raises(UsageError, match=message):
        build_input_sets(kind, 64, **kwargs)


def test_image_folder_with_unreadable_image_is_a_usage_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UsageError, match="cannot read image"):
        build_input_sets("images", 64, images_dir=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="holds no images"):
        build_input_sets("images", 64, images_dir=empty)


def test_eager_runner_records_every_block_and_leaves_the_model_alone():
    model = random_model("xs", seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    runner = EagerRunner(model, dtype=torch.float64)
    image = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    blocks = runner.run_intermediates(image, block_names(model))
    assert set(blocks) == set(block_names(model)) and len(blocks) == 1 + (2 + 2 + 4 + 2) + 3 + 1
    assert blocks["network.6.1"].shape == (1, 220, 2, 2) and blocks["head"].dtype == np.float64
    np.testing.assert_array_equal(blocks["head"], runner.run(image)["logits"])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(KeyError):
        runner.run_intermediates(image, ["network.9"])


@pytest.mark.parametrize("name, message", [("model.onnx", "does not exist"), ("exists.xyz", "unknown artifact format")])
def test_unknown_or_missing_artifacts_are_usage_errors(tmp_path, name, message):
    (tmp_path / "exists.xyz").write_bytes(b"x")
    with pytest.raises(UsageError, match=message):
        format_for_path(tmp_path / name)


def test_manifest_record_is_atomic_and_keeps_everything_else(tmp_path):
    artifact = tmp_path / "a.onnx"
    artifact.write_bytes(b"")
    manifests.save(minimal_manifest(), artifact)
    path = manifest_path(artifact)
    path.chmod(0o640)
    before = json.loads(path.read_text())
    manifests.append_parity(artifact, ParityRecord("pass", artifact_sha256(artifact)))
    after = json.loads(path.read_text())
    assert [p["status"] for p in after.pop("parity")] == ["pass"] and before.pop("parity") == []
    assert after == before
    assert path.stat().st_mode & 0o777 == 0o640 and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="not readable JSON"):
        manifests.load(artifact)


def test_junit_marks_failing_input_sets():
    ref = np.eye(3, dtype=np.float32)
    good = InputSetResult("random", ["a", "b", "c"], [compare("logits", ref, ref)])
    bad = InputSetResult("images", ["x"], [compare("logits", ref[::-1], ref)], ["logits: cosine 0 < 0.99999"])
    report = ParityReport("m.onnx", "onnx", "engine", "ref", "fp32", "w", DEFAULTS[Precision.FP32], [good, bad])
    root = junit_tree([report]).getroot()
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    failure = root.find("testsuite/testcase[@name='images']/failure")
    assert failure is not None and "cosine" in failure.get("message")
    assert root.find("testsuite/testcase[@name='random']/failure") is None
    assert not report.passed and report.to_dict()["status"] == "fail"
    ET.tostring(root)  # serializable


class _FixedBatchRunner:
    """Accepts exactly `batch` images and returns each image's mean as its output."""

    description = "fixed-batch stub"

    def __init__(self, batch: int):
        self.batch = batch

    def run(self, image):
        if len(image) != self.batch:
            raise RuntimeError(f"expected batch {self.batch}, got {len(image)}")
        return {"logits": image.reshape(len(image), -1).mean(1, keepdims=True)}


def test_run_all_pads_the_last_chunk_for_fixed_batch_artifacts():
    images = np.arange(5 * 3 * 2 * 2, dtype=np.float32).reshape(5, 3, 2, 2)
    expected = images.reshape(5, -1).mean(1, keepdims=True)
    np.testing.assert_array_equal(run_all(_FixedBatchRunner(2), images, 2)["logits"], expected)
    with pytest.raises(UsageError, match="could not run the artifact on input \\[5, 3, 2, 2\\]"):
        run_all(_FixedBatchRunner(2), images, None)
