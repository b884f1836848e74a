"""CoreMLRunner: engine choice, interface, batching, intermediates and errors, on tiny packages."""

from __future__ import annotations

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from casvit_deploy.errors import BackendMissingError, UsageError  # noqa: E402
from casvit_deploy.formats.coreml import runner as coreml  # noqa: E402
from casvit_deploy.formats.coreml.mil import UnsupportedOpError  # noqa: E402
from casvit_deploy.formats.coreml.options import CoreMLEngine  # noqa: E402
from casvit_deploy.formats.coreml.runner import CoreMLRunner, resolve_engines  # noqa: E402
from tests.mil_helpers import open_coreml  # noqa: E402

RNG = np.random.default_rng(0)
W = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
FC = RNG.standard_normal((5, 4)).astype(np.float32)


def tiny_program(classes=None):
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 8, 8), dtype=types.fp32)], opset_version=ct.target.iOS16)
    def prog(image):
        h = mb.relu(x=mb.conv(x=image, weight=W, pad_type="same"), name="features")
        return mb.linear(x=mb.reduce_mean(x=h, axes=[2, 3], name="pooled"), weight=FC, name="scores")

    return prog


def reference(x: np.ndarray) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    h = F.relu(F.conv2d(torch.from_numpy(x), torch.from_numpy(W), padding=1))
    return F.linear(h.mean((2, 3)), torch.from_numpy(FC)).numpy()


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.mlpackage"
    ct.convert(tiny_program(), convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
               compute_precision=ct.precision.FLOAT32, skip_model_load=True).save(str(path))
    return path


def test_auto_engine_is_the_interpreter_off_macos(package, monkeypatch):
    monkeypatch.setattr(coreml.platform, "system", lambda: "Linux")
    runner = open_coreml(package, engine="auto")
    assert runner.engines == (CoreMLEngine.MIL_REFERENCE,)
    assert "MIL reference interpreter" in runner.description and "emulation" in runner.description
    assert "not the Apple Core ML runtime" in runner.description and "fp32" in runner.description


def test_engine_resolution(monkeypatch):
    monkeypatch.setattr(coreml.platform, "system", lambda: "Darwin")
    assert resolve_engines("auto") == ("coreml",)
    assert resolve_engines("both") == ("coreml", "mil-reference")
    monkeypatch.setattr(coreml.platform, "system", lambda: "Linux")
    assert resolve_engines("mil-reference") == ("mil-reference",)
    for engine in ("coreml", "both"):
        with pytest.raises(BackendMissingError, match="only exists on macOS"):
            resolve_engines(engine)
    with pytest.raises(UsageError, match="--engine 'tpu': choose one of"):
        resolve_engines("tpu")


def test_run_names_the_single_output_logits_and_batches_per_sample(package):
    runner = open_coreml(package)
    x = RNG.standard_normal((3, 3, 8, 8)).astype(np.float32)
    out = runner.run(x)
    assert list(out) == ["logits"] and out["logits"].shape == (3, 5)
    np.testing.assert_allclose(out["logits"], reference(x), rtol=1e-5, atol=1e-5)
    assert list(runner.run_each(x[:1])) == ["mil-reference"]


def test_run_intermediates(package):
    runner = open_coreml(package)
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    values = runner.run_intermediates(x, ["pooled", "features"])
    assert list(values) == ["pooled", "features"]
    assert values["features"].shape == (2, 4, 8, 8) and values["pooled"].shape == (2, 4)
    np.testing.assert_allclose(values["pooled"], values["features"].mean((2, 3)), rtol=1e-5, atol=1e-6)
    with pytest.raises(UsageError, match="no variable named 'nope'"):
        runner.run_intermediates(x, ["nope"])


def test_wrong_input_shape_is_a_usage_error(package):
    with pytest.raises(UsageError, match="takes batches of|expects"):
        open_coreml(package).run(np.zeros((1, 3, 9, 9), np.float32))


def test_missing_and_damaged_packages_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="not an .mlpackage"):
        open_coreml(tmp_path / "absent.mlpackage")
    broken = tmp_path / "broken.mlpackage"
    (broken / "Data").mkdir(parents=True)
    (broken / "Manifest.json").write_text("{not json")
    with pytest.raises(UsageError, match="cannot read"):
        open_coreml(broken)


def unknown_op_package(tmp_path):
    """A saved one-op program whose op (tanh) the interpreter does not implement."""
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4), dtype=types.fp32)], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.tanh(x=x, name="probs")

    path = tmp_path / "tanh.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
               compute_precision=ct.precision.FLOAT32, skip_model_load=True).save(str(path))
    return path


def test_package_with_an_unknown_op_fails_naming_it(tmp_path):
    path = unknown_op_package(tmp_path)
    with pytest.raises(UnsupportedOpError, match="does not implement op 'tanh'"):
        open_coreml(path)


def test_classifier_package_reports_probabilities_and_label(tmp_path):
    """A classify op's outputs are reported as "probabilities" (the scores it classifies, in
    class order) and "label" (the index of the top class)."""
    path = tmp_path / "classifier.mlpackage"
    ct.convert(tiny_program(), convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
               compute_precision=ct.precision.FLOAT32, classifier_config=ct.ClassifierConfig(list("abcde")),
               skip_model_load=True).save(str(path))
    runner = open_coreml(path)
    assert runner.program.functions["main"].outputs[0].op.op_type == "classify"
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    out = runner.run(x)
    assert list(out) == ["probabilities", "label"] and out["label"].dtype == np.int64
    np.testing.assert_allclose(out["probabilities"], reference(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out["label"], reference(x).argmax(1))


def test_interpreter_thread_setting_is_restored_after_a_run(package):
    import torch

    before = torch.get_num_threads()
    open_coreml(package, threads=1).run(np.zeros((1, 3, 8, 8), np.float32))
    assert torch.get_num_threads() == before


def test_block_vars_by_name_fp16_suffix_output_fallback_and_unmapped(tmp_path):
    from casvit_deploy.formats.coreml.mil import block_vars

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4), dtype=types.fp32)], opset_version=ct.target.iOS16)
    def prog(x):
        a = mb.relu(x=mb.cast(x=x, dtype="fp16"), name="relu_1_cast_fp16")
        b = mb.add(x=a, y=mb.sigmoid(x=a, name="sig"), name="add_3")
        return mb.mul(x=b, y=np.float16(2.0), name="logits")

    found = block_vars(prog, {"stem": "relu_1", "block": "add_3", "lost": "conv2d_9", "head": "linear"})
    assert dict(found) == {"stem": "relu_1_cast_fp16", "block": "add_3", "head": "logits"}
    assert list(found.unmapped) == ["lost"] and "conv2d_9" in found.unmapped["lost"]
    assert list(found.approximate) == ["head"]


def test_coreml_engine_does_not_need_the_interpreter(tmp_path, monkeypatch):
    """On macOS an op the interpreter lacks must not block the real runtime; intermediates
    still need the interpreter and then fail naming the op."""
    path = unknown_op_package(tmp_path)
    monkeypatch.setattr(coreml.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(CoreMLRunner, "_load_coreml", lambda self: "apple runtime")
    runner = open_coreml(path, engine="coreml")
    assert runner.engines == (CoreMLEngine.COREML,) and runner.description.startswith("Core ML runtime")
    with pytest.raises(UnsupportedOpError, match="tanh"):
        runner.run_intermediates(np.zeros((1, 4), np.float32), ["probs"])


def test_core_ml_classifier_outputs_in_class_order(tmp_path, monkeypatch):
    """Apple's runtime returns a label string and a label -> probability dictionary; the
    runner turns them into the label's index and the probabilities in class order."""
    path = tmp_path / "classifier.mlpackage"
    ct.convert(tiny_program(), convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
               compute_precision=ct.precision.FLOAT32, classifier_config=ct.ClassifierConfig(list("edcba")),
               skip_model_load=True).save(str(path))

    class FakeCoreML:
        def predict(self, feeds):
            return {"classLabel": "c", "classLabel_probs": {"a": 0.5, "b": 0.2, "c": 0.1, "d": 0.15, "e": 0.05}}

    monkeypatch.setattr(coreml.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(CoreMLRunner, "_load_coreml", lambda self: FakeCoreML())
    runner = open_coreml(path, engine="coreml")
    assert runner.class_labels == list("edcba")
    out = runner.run(np.zeros((1, 3, 8, 8), np.float32))
    np.testing.assert_array_equal(out["probabilities"], np.array([[0.05, 0.15, 0.1, 0.2, 0.5]], np.float32))
    assert out["label"].tolist() == [2] and out["label"].dtype == np.int64
