"""`casvit info ARTIFACT` on every artifact kind: what it is and how to feed it, read from
its manifest and checked against its file; and the ExecuTorch runner's contiguous input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from casvit_deploy.cli import app
from casvit_deploy.store.manifests import manifest_path

TARGET_KEYS = {"onnx": {"opset", "ir_version", "min_onnxruntime"},
               "ort": {"opset", "ir_version", "min_onnxruntime", "ort_format_version"},
               "coreml": {"deployment_target", "spec_version"},
               "executorch": {"delegate", "pte_format", "min_executorch_runtime"}}


def invoke(*args):
    return CliRunner().invoke(app, ["info", *map(str, args)], env={"COLUMNS": "200"})


@pytest.mark.parametrize("fmt", ["onnx", "ort", "coreml", "executorch"])
def test_info_describes_each_artifact_kind(fmt, small_export):
    result = small_export(fmt)
    shown = invoke(result.artifact, "--json", "-")
    assert shown.exit_code == 0, shown.output
    facts = json.loads(shown.output)
    assert facts["format"] == fmt and facts["matches_manifest"] and facts["sha256"] == result.manifest.sha256
    assert facts["size_bytes"] == result.manifest.size_bytes and facts["batch"] == 1 and facts["resolution"] == "32"
    assert facts["precision"] == ("fp16" if fmt == "coreml" else "fp32")
    assert set(facts["target"]) == TARGET_KEYS[fmt]
    assert facts["inputs"][0]["name"] == "image" and "std" in facts["inputs"][0]["description"]
    assert facts["outputs"][0]["description"].startswith("raw class scores")
    assert facts["preprocessing"]["normalized_by"] == "app"
    assert facts["parity"] == {"status": "never checked", "checks": 0}
    assert facts["tools"]["torch"] and facts["model"]["weights"] == "random weights, not pretrained"
    assert (facts["mobile_usability"] or "").startswith("ORT mobile:") == (fmt in ("onnx", "ort"))
    table = invoke(result.artifact)
    assert table.exit_code == 0 and "matches manifest: yes" in table.output and "never checked" in table.output


def test_info_flags_a_file_changed_after_export(small_export, tmp_path):
    source = small_export("onnx").artifact
    copy = tmp_path / source.name
    shutil.copy(source, copy)
    shutil.copy(manifest_path(source), manifest_path(copy))
    with open(copy, "ab") as f:
        f.write(b"\0")
    facts = json.loads(invoke(copy, "--json", "-").output)
    assert not facts["matches_manifest"] and facts["manifest_sha256"] != facts["sha256"]
    assert "matches manifest: NO" in invoke(copy).output


@pytest.mark.parametrize("extra, message", [([], "has no manifest"), (["--variant", "xs"], "--variant describes a model")])
def test_info_artifact_errors_are_one_line(small_export, tmp_path, extra, message):
    lone = tmp_path / "lone.onnx"
    shutil.copy(small_export("onnx").artifact, lone)
    result = invoke(lone, *extra)
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_info_unknown_artifact_suffix(tmp_path):
    path = tmp_path / "model.xyz"
    path.write_bytes(b"x")
    result = invoke(path)
    assert result.exit_code == 2 and "unknown artifact format '.xyz'" in result.output


def test_executorch_runner_hands_the_runtime_contiguous_memory(small_export):
    """ExecuTorch's Python runtime reads a non-contiguous tensor as if it were contiguous;
    an HWC image transposed to CHW (a view) must give what its contiguous copy gives."""
    from casvit_deploy.store.runners import open_runner

    hwc = np.random.default_rng(5).standard_normal((1, 32, 32, 3)).astype(np.float32)
    view = hwc.transpose(0, 3, 1, 2)
    assert not view.flags["C_CONTIGUOUS"]
    with open_runner(small_export("executorch").artifact) as runner:
        from_view = runner.run(view)["logits"]
        from_copy = runner.run(np.ascontiguousarray(view))["logits"]
    np.testing.assert_array_equal(from_view, from_copy)
    assert np.abs(from_copy).max() > 0
