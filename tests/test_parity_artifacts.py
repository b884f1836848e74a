"""`casvit parity` on real exported artifacts: it passes correct ones, fails and locates
corrupted ones, and refuses bad input with exit code 2. A weight corrupted after export
stands in for a broken export: the gate refuses such a file outright (tests/test_parity_gate.py),
so these tests check it as it is (--allow-modified) to test the numbers and localization."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from casvit_deploy.cli import app
from casvit_deploy.model import load_model
from casvit_deploy.numerics import ThresholdOverrides
from casvit_deploy.parity import check_artifact
from casvit_deploy.store import manifests
from tests.parity_helpers import copy_artifact, perturb_float, reference_weight

RESOLUTION = 64
CORRUPTED_BLOCK = "network.4.2"
CORRUPTED_WEIGHT = f"{CORRUPTED_BLOCK}.mlp.fc2.weight"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def without_progress(stderr: str) -> list[str]:
    """stderr without the progress lines ("[   1.2s] stage") a log gets before an error."""
    return [line for line in stderr.strip().splitlines() if not re.match(r"\[ *[\d.]+s\] ", line)]


def _export(loaded, fmt: str, folder: Path, **kwargs) -> Path:
    from casvit_deploy.pipeline import export_model

    return export_model(loaded, fmt, folder, resolution=RESOLUTION, **kwargs).artifact


@pytest.fixture(scope="module")
def ckpt_loaded(xs_checkpoint):
    return load_model(xs_checkpoint)


@pytest.fixture(scope="module")
def onnx_artifact(ckpt_loaded, tmp_path_factory):
    return _export(ckpt_loaded, "onnx", tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="module")
def pte_artifact(small_artifact):
    """The session's shared ExecuTorch artifact (random weights, seed 0); tests copy it before changing it."""
    pytest.importorskip("casvit_deploy.formats.executorch.runner")
    return small_artifact("executorch")


@pytest.fixture(scope="module")
def coreml_artifact(tmp_path_factory):
    pytest.importorskip("casvit_deploy.formats.coreml.runner")
    return _export(load_model(None, "xs", seed=0), "coreml", tmp_path_factory.mktemp("mlpackage"), precision="fp32")


def _weight_file(artifact: Path) -> Path:
    """The file that holds the artifact's weights (a CoreML package keeps them apart)."""
    if artifact.is_dir():
        return next(artifact.rglob("weight.bin"))
    return artifact


def _corrupted(artifact: Path, loaded, folder: Path) -> Path:
    bad = copy_artifact(artifact, folder)
    weight = reference_weight(loaded, artifact, CORRUPTED_WEIGHT)
    perturb_float(_weight_file(bad), weight, index=7, delta=5.0)
    return bad


def test_correct_onnx_passes_records_manifest_and_writes_reports(onnx_artifact, xs_checkpoint, tmp_path):
    junit, report = tmp_path / "parity.xml", tmp_path / "parity.json"
    result = invoke("parity", onnx_artifact, "--checkpoint", xs_checkpoint, "--per-block",
                    "--junit", junit, "--json", report)
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "onnxruntime" in result.output
    data = json.loads(report.read_text())
    assert data["passed"] and data["reports"][0]["localization"]["first_divergent"] is None
    blocks = data["reports"][0]["localization"]["blocks"]
    assert [b["status"] for b in blocks] == ["ok"] * len(blocks) and blocks[-1]["block"] == "head"
    images = data["reports"][0]["input_sets"][1]
    assert images["name"] == "images" and images["outputs"][0]["top1_agreement"] == 1.0
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "0" and int(root.get("tests")) == 3  # integrity + 2 input sets
    assert manifests.load(onnx_artifact).latest_parity.status == "pass"


def test_corrupted_onnx_fails_and_names_the_block(onnx_artifact, ckpt_loaded, xs_checkpoint, tmp_path):
    bad = _corrupted(onnx_artifact, ckpt_loaded, tmp_path / "bad")
    junit = tmp_path / "parity.xml"
    result = invoke("parity", bad, "--checkpoint", xs_checkpoint, "--junit", junit, "--allow-modified")
    assert result.exit_code == 1, result.output
    assert f"first divergent block {CORRUPTED_BLOCK}" in result.stderr
    assert ET.parse(junit).getroot().get("failures") != "0"
    recorded = manifests.load(bad).latest_parity
    assert recorded.status == "fail" and recorded.report["localization"]["first_divergent"] == CORRUPTED_BLOCK


def test_parity_in_an_80_column_log_shows_whole_numbers_margins_and_progress(onnx_artifact, xs_checkpoint,
                                                                           tmp_path):
    report = tmp_path / "parity.json"
    result = CliRunner().invoke(app, ["parity", str(onnx_artifact), "-c", str(xs_checkpoint), "--json", str(report)],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout and "│" not in result.stdout
    data = json.loads(report.read_text())["reports"][0]
    for s in data["input_sets"]:
        m = s["outputs"][0]
        assert f"inputs: {s['name']} ({s['samples']}) | output: logits | max abs: {m['max_abs']:.3g} | " in result.stdout
        allowed = data["thresholds"]["atol"] + data["thresholds"]["rtol"] * m["ref_max_abs"]
        assert f"{s['name']} logits: max abs {m['max_abs']:.1e} of {allowed:.1e} allowed" in result.stdout
    stages = [line.split("] ", 1)[1] for line in result.stderr.splitlines()]
    name = f"parity 1 of 1 {onnx_artifact.name}"
    assert stages == [f"{name}: reference model", f"{name}: inputs", f"{name}: random inputs (4 samples)",
                      f"{name}: images inputs (16 samples)"]


def test_when_only_the_final_output_diverges_parity_says_so(onnx_artifact, xs_checkpoint):
    """No block beyond --block-rtol, yet the output fails: the message names the output, never 'None'."""
    result = invoke("parity", onnx_artifact, "-c", xs_checkpoint, "--inputs", "random", "--samples", "2",
                    "--atol", "0", "--rtol", "0", "--block-rtol", "1")
    assert result.exit_code == 1, result.output
    assert "None" not in result.output
    assert "every block is within --block-rtol 1: only the final output (head -> logits) diverges" in result.stderr


def test_check_artifact_uses_the_given_model(onnx_artifact, ckpt_loaded):
    report = check_artifact(onnx_artifact, ckpt_loaded, inputs="random", samples=2, record=False)
    assert report.passed and report.input_sets[0].outputs[0].max_abs < 1e-4


def test_tightened_threshold_makes_a_correct_artifact_fail(onnx_artifact, ckpt_loaded):
    report = check_artifact(onnx_artifact, ckpt_loaded, inputs="random", samples=2, record=False,
                            overrides=ThresholdOverrides(atol=0.0, rtol=0.0))
    assert not report.passed and any("max abs error" in f for f in report.failures)
    assert report.localization is not None  # automatic on failure


def test_executorch_passes_and_a_corrupted_weight_is_located(pte_artifact, tmp_path):
    good = check_artifact(pte_artifact, inputs="images", samples=4, record=False)
    assert good.passed, good.failures
    bad = _corrupted(pte_artifact, load_model(None, "xs", seed=0), tmp_path / "bad")
    result = invoke("parity", bad, "--inputs", "images", "--samples", "4", "--allow-modified")
    assert result.exit_code == 1, result.output
    assert f"first divergent block {CORRUPTED_BLOCK}" in result.stderr
    assert "weight audit" in result.output


def test_coreml_passes_and_a_corrupted_weight_is_located(coreml_artifact, tmp_path):
    good = check_artifact(coreml_artifact, inputs="images", samples=4, record=False)
    assert good.passed, good.failures
    bad = _corrupted(coreml_artifact, load_model(None, "xs", seed=0), tmp_path / "bad")
    report = check_artifact(bad, inputs="images", samples=4, record=False, allow_modified=True)
    assert not report.passed and report.localization.first_divergent == CORRUPTED_BLOCK


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("suffix", "unknown artifact format"),
    ("truncated", "cannot load"),
    ("no-manifest", "has no manifest"),
    ("bad-manifest", "manifest"),
    ("wrong-resolution", "'preprocessing.crop' must be the resolution"),
])
def test_bad_artifacts_exit_2_with_one_line(onnx_artifact, tmp_path, case, message):
    target = tmp_path / onnx_artifact.name
    if case != "missing":
        target = copy_artifact(onnx_artifact, tmp_path)
    if case == "suffix":
        target = target.rename(target.with_suffix(".xyz"))
    elif case == "truncated":
        target.write_bytes(target.read_bytes()[:5000])
    elif case == "no-manifest":
        Path(str(target) + ".manifest.json").unlink()
    elif case == "bad-manifest":
        Path(str(target) + ".manifest.json").write_text("[1, 2")
    elif case == "wrong-resolution":
        manifest = Path(str(target) + ".manifest.json")
        data = json.loads(manifest.read_text())
        data["resolution"] = {"height": 96, "width": 96}
        manifest.write_text(json.dumps(data))
    result = invoke("parity", target)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(without_progress(result.stderr)) == 1
    assert "Traceback" not in result.output


def test_checkpoint_that_is_not_the_exported_one_is_refused(onnx_artifact, checkpoint_factory):
    other = checkpoint_factory("xs", seed=5)
    result = invoke("parity", onnx_artifact, "--checkpoint", other)
    assert result.exit_code == 2 and "is not the one" in result.stderr


def test_random_weights_artifact_refuses_a_checkpoint(pte_artifact, xs_checkpoint):
    result = invoke("parity", pte_artifact, "--checkpoint", xs_checkpoint)
    assert result.exit_code == 2 and "random weights" in result.stderr


def test_report_into_missing_folder_is_a_usage_error(onnx_artifact, tmp_path):
    result = invoke("parity", onnx_artifact, "--junit", tmp_path / "nope" / "x.xml")
    assert result.exit_code == 2 and "does not exist" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("variant, fmt, precision", [
    ("xs", "coreml", "fp16"), ("t", "coreml", "fp16"), ("t", "onnx", "fp32"), ("t", "executorch", "fp32"),
])
def test_larger_variant_and_fp16_pass_with_default_thresholds(variant, fmt, precision, tmp_path):
    from casvit_deploy.pipeline import export_model

    artifact = export_model(load_model(None, variant, seed=1), fmt, tmp_path, resolution=96,
                            precision=precision).artifact
    report = check_artifact(artifact, inputs="both")
    assert report.passed, report.failures
    assert report.precision == precision and report.thresholds.rtol == (5e-3 if precision == "fp16" else 1e-4)
