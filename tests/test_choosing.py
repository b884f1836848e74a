"""What `casvit info` and the export say to someone choosing an artifact: the first runtime
release that loads a `.pte`, and advice (not just a count) when a mobile EP would split a graph."""

from __future__ import annotations

import json
from importlib.metadata import version

from typer.testing import CliRunner

from casvit_deploy.cli import app
from casvit_deploy.formats.executorch.details import ExecuTorchDetails
from casvit_deploy.formats.onnx.mobile_usability import summary


def test_info_states_the_minimum_executorch_runtime_of_a_pte(small_artifact):
    result = CliRunner().invoke(app, ["info", str(small_artifact("executorch")), "--json", "-"])
    assert result.exit_code == 0, result.output
    target = json.loads(result.stdout)["target"]
    assert target["min_executorch_runtime"] == version("executorch")
    assert target["pte_format"].startswith("ET") and len(target["pte_format"]) == 4


def test_pte_target_left_out_when_an_older_manifest_did_not_record_it():
    assert ExecuTorchDetails().target() == {}


def test_a_split_graph_comes_with_advice_and_a_whole_one_without():
    split = {"nnapi": {"partitions": 21, "whole_graph": False, "unsupported_ops": ["ai.onnx:Gelu"]},
             "coreml_mlprogram": {"partitions": 1, "whole_graph": True, "unsupported_ops": []}}
    line = summary(split)
    assert "NNAPI 21 partitions (unsupported: Gelu)" in line
    assert "do not enable NNAPI for this model" in line and "CoreML MLProgram EP (iOS)" in line
    whole = {"coreml_mlprogram": split["coreml_mlprogram"]}
    assert "do not enable" not in summary(whole)
