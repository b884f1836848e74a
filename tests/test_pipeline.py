"""The export pipeline as a library: a request checked once before any model is loaded,
then exported, gated and published, its records returned in memory."""

from __future__ import annotations

import pytest

from casvit_deploy.errors import UsageError
from casvit_deploy.pipeline import ExportRequest, plan, ship
from casvit_deploy.store import manifests


def test_ship_returns_the_published_records_in_memory(tmp_path):
    shipped = ship(ExportRequest(("onnx",), resolution=32, out=tmp_path))
    (outcome,) = shipped.outcomes
    assert shipped.ok and outcome.format == "onnx"
    result = outcome.result
    assert result.gate.status == "pass" and result.manifest.latest_parity is result.gate
    assert manifests.load(result.artifact) == result.manifest  # what is on disk is what was returned


def test_a_request_is_refused_before_any_model_is_loaded(monkeypatch, tmp_path):
    import casvit_deploy.model.loading as loading

    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    for request, message in [
        (ExportRequest(("onnx",), options={"opset": 16}), "--opset 16"),
        (ExportRequest(("ort",), precision="int8"), "ort export supports precision fp32"),
        (ExportRequest(("onnx",), options={"labels": tmp_path}), "--labels applies to coreml only"),
        (ExportRequest(("coreml",), options={"deployment_target": "iOS15"}), "too old deployment target"),
        (ExportRequest(("coreml",), options={"palettize": 4}), "--palettize 4 needs --deployment-target iOS18"),
        (ExportRequest(("onnx",), int8={"keep_float": ["head"]}), "--keep-float applies to --precision int8"),
    ]:
        with pytest.raises(UsageError, match=message):
            ship(request)


def test_a_named_format_that_cannot_build_the_request_refuses_it_all_leaves_it_out():
    """`-f onnx,ort -p int8` is refused as `-f ort -p int8` is (exit 2, one line); `-f all -p
    int8` means every format that can, and leaves ORT out, saying why."""
    from casvit_deploy.settings import Precision

    with pytest.raises(UsageError, match="ort export supports precision fp32"):
        plan(ExportRequest(("onnx", "ort"), precision=Precision.INT8))
    checked = plan(ExportRequest(("all",), precision=Precision.INT8))
    refused = {item.format.name: item.refused for item in checked.formats}
    assert refused["onnx"] is None and "ort export supports precision fp32" in str(refused["ort"])
    with pytest.raises(UsageError, match="--dynamic-batch"):  # none of them can
        plan(ExportRequest(("all",), precision=Precision.W8A8, dynamic_batch=True))
