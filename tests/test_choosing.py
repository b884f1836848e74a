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


def test_choosing_section_figures_are_those_of_the_benchmark_files_it_cites():
    """Every size and agreement figure of "Choosing an artifact" is in the file it names."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    section = readme.split("## Choosing an artifact", 1)[1].split("\n## ", 1)[0]
    sources = {"benchmarks/INT8.md": ["3.42 MB", "12.01 MB", "0.9979", "28.9", "3.6 MB", "0.9963", "0.9992"],
               "benchmarks/COREML_COMPRESSION.md": ["6.5 MB", "3.38 MB", "0.99916", "3.39 MB", "0.99951", "3.56 MB",
                                                    "0.99795", "2.60 MB", "0.98855"]}
    for name, figures in sources.items():
        text = (root / name).read_text()
        for figure in figures:
            assert figure in section and figure in text, (name, figure)
    bench = json.loads((root / "benchmarks/bench_ort_vs_onnx_xs_224.json").read_text())["results"]
    for result in bench:
        assert f"{result['artifact_mb']:.2f} MB" in section, result["artifact"]
