"""The parity gate cannot be fooled: an artifact that is not the one its manifest describes
(other bytes, or other input/output names, shapes or dtypes read from the artifact itself)
fails with exit 1, the JSON and JUnit reports name the difference, and no `pass` is
recorded; `--allow-modified` checks it as it is and records the hash it checked. A result
is recorded only for the bytes that were checked."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from casvit_deploy.artifacts.files import artifact_sha256
from casvit_deploy.parity import check, check_artifact
from casvit_deploy.store import manifests
from casvit_deploy.store.manifests import manifest_path
from casvit_deploy.store.runners import open_runner
from tests.hostile import MODIFIED_ARTIFACTS, PARITY_FAST, Workspace
from tests.test_hostile import run_casvit

WHAT_DIFFERS = {  # the difference each modification must be reported as
    "onnx-initializer-bit-flip": ["sha256"], "onnx-metadata-edited": ["sha256"],
    "onnx-input-renamed": ["sha256", "input 0 is named 'input', the manifest says 'image'"],
    "onnx-output-renamed": ["sha256", "output 0 is named 'scores', the manifest says 'logits'"],
    "pte-bit-flip": ["sha256"], "mlpackage-weight-bit-flip": ["sha256"], "mlpackage-extra-file": ["sha256"],
    "tflite-weight-bit-flip": ["sha256"],
}


@pytest.fixture
def workspace(tmp_path, xs_checkpoint, small_artifact):
    return Workspace(tmp_path / "case", tmp_path, tmp_path / "sentinel", xs_checkpoint, small_artifact)


@pytest.mark.parametrize("fmt", ["onnx", "executorch", "coreml"])
def test_each_runner_reads_the_signature_its_manifest_records(small_artifact, fmt):
    artifact = small_artifact(fmt)
    with open_runner(artifact) as runner:
        found = runner.signature()
    assert manifests.load(artifact).signature.differences(found) == []
    assert [s.name for s in found.inputs] == ["image"] and [s.name for s in found.outputs] == ["logits"]


@pytest.mark.parametrize("name", sorted(MODIFIED_ARTIFACTS))
def test_modified_artifact_fails_with_reports_naming_the_difference(name, workspace, tmp_path):
    artifact = MODIFIED_ARTIFACTS[name](workspace)
    manifest_before = manifest_path(artifact).read_text()
    report, junit = tmp_path / "parity.json", tmp_path / "parity.xml"
    assert run_casvit(["parity", str(artifact), *PARITY_FAST, "--json", str(report), "--junit", str(junit)]) == 1
    data = json.loads(report.read_text())
    integrity = data["reports"][0]["integrity"]
    assert not data["passed"] and integrity["modified"] and not integrity["allowed"]
    assert integrity["sha256"] == artifact_sha256(artifact) != integrity["expected_sha256"]
    for difference in WHAT_DIFFERS[name]:
        assert any(difference in f for f in data["reports"][0]["failures"]), data["reports"][0]["failures"]
    case = ET.parse(junit).getroot().find(".//testcase[@name='integrity']")
    failure = case.find("failure")
    assert failure is not None and all(d in failure.text for d in WHAT_DIFFERS[name])
    assert manifest_path(artifact).read_text() == manifest_before  # no pass (nor anything else) recorded


def test_allow_modified_checks_the_artifact_as_it_is_and_records_the_new_hash(workspace):
    artifact = MODIFIED_ARTIFACTS["onnx-input-renamed"](workspace)
    exported = manifests.load(artifact).sha256
    assert run_casvit(["parity", str(artifact), *PARITY_FAST, "--allow-modified"]) == 0
    manifest = manifests.load(artifact)
    record = manifest.latest_parity
    assert record.status == "pass" and record.sha256 == artifact_sha256(artifact) != exported
    assert "--allow-modified" in record.reason and "named 'input'" in record.reason
    assert manifest.sha256 == exported  # the export's own facts are not rewritten
    assert run_casvit(["parity", str(artifact), *PARITY_FAST]) == 1  # without the flag it still fails


def test_unmodified_artifact_has_a_passing_integrity_case(workspace, tmp_path):
    artifact = workspace.artifact("onnx")
    junit = tmp_path / "ok.xml"
    assert run_casvit(["parity", str(artifact), *PARITY_FAST, "--junit", str(junit)]) == 0
    case = ET.parse(junit).getroot().find(".//testcase[@name='integrity']")
    assert case is not None and case.find("failure") is None
    assert manifests.load(artifact).latest_parity.sha256 == manifests.load(artifact).sha256


def _during_check(monkeypatch, action) -> None:
    """Run `action()` once the outputs were compared, before the result is recorded."""
    real = check._check_set

    def compared(*args, **kwargs):
        result = real(*args, **kwargs)
        action()
        return result

    monkeypatch.setattr(check, "_check_set", compared)


def test_no_record_when_the_artifact_changes_during_the_check(workspace, monkeypatch):
    artifact = workspace.artifact("onnx")
    before = manifest_path(artifact).read_text()
    _during_check(monkeypatch, lambda: artifact.write_bytes(artifact.read_bytes() + b"\0"))
    report = check_artifact(artifact, inputs="random", samples=1)
    assert report.passed  # the bytes that were run were right ...
    assert any("changed while it was checked" in n for n in report.notes)
    assert manifest_path(artifact).read_text() == before  # ... but they are gone: nothing recorded


def test_no_record_into_the_manifest_of_another_export(workspace, monkeypatch):
    """An export replaced the manifest during the check: its manifest gets no record of ours."""
    artifact = workspace.artifact("onnx")
    other = manifests.load(artifact)
    other.sha256 = "0" * 64

    _during_check(monkeypatch, lambda: manifests.save(other, artifact))
    report = check_artifact(artifact, inputs="random", samples=1)
    assert any("exported again" in n for n in report.notes)
    assert manifests.load(artifact).parity == []
