"""ONNX files for the runtimes apps ship: `--opset 17..20` (IR version and first ONNX Runtime
release recorded), ONNX Runtime's mobile usability verdict in the manifest, and the ORT
format (`.ort`) through ONNX Runtime's own converter, each checked with the tools their
users run (onnx.checker, ONNX Runtime, its usability checker) and by parity."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from casvit_deploy.errors import UsageError
from casvit_deploy.formats.onnx.opset import min_onnxruntime
from casvit_deploy.formats.onnx.options import OnnxOptions
from casvit_deploy.formats.ort.options import OrtOptions
from casvit_deploy.formats.ort.releases import min_onnxruntime as ort_min_onnxruntime
from casvit_deploy.model import load_model
from casvit_deploy.parity import check_artifact
from casvit_deploy.pipeline import export_model
from casvit_deploy.store import manifests

RES = 32
IR_FOR = {17: 8, 18: 8, 19: 9, 20: 9}
ORT_FOR = {17: "1.13", 18: "1.14", 19: "1.15", 20: "1.17"}
GELUS = 20  # exact GELUs in CAS-ViT-XS


@pytest.fixture(scope="module")
def loaded():
    return load_model(variant="xs", seed=3)


@pytest.fixture(scope="module")
def exports(loaded, tmp_path_factory):
    """(fmt, opset) -> ExportResult, exported once for the module."""
    out, done = tmp_path_factory.mktemp("targets"), {}

    def get(fmt: str, opset: int):
        if (fmt, opset) not in done:
            options = (OrtOptions if fmt == "ort" else OnnxOptions)(opset=opset)
            done[fmt, opset] = export_model(loaded, fmt, out / f"{fmt}{opset}", resolution=RES, options=options)
        return done[fmt, opset]

    return get


@pytest.mark.parametrize("opset", [17, pytest.param(18, marks=pytest.mark.slow), pytest.param(19, marks=pytest.mark.slow),
                                   20])  # the ends of the range in the fast suite
def test_each_opset_passes_the_full_checker_and_parity(opset, exports, loaded):
    import onnx

    result = exports("onnx", opset)
    model = onnx.load(str(result.artifact))
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", opset)]
    assert model.ir_version == IR_FOR[opset]
    details = result.manifest.details
    assert (details.opset, details.ir_version, details.min_onnxruntime) == (opset, IR_FOR[opset],
                                                                                      ORT_FOR[opset])
    assert result.manifest.options == OnnxOptions(opset=opset)
    ops = [n.op_type for n in model.graph.node]
    if opset == 20:
        assert ops.count("Gelu") == GELUS and "Erf" not in ops
    else:  # the standard erf form: x * 0.5 * (1 + erf(x / sqrt(2))), ordered for ONNX Runtime's fusion
        assert ops.count("Erf") == GELUS and "Gelu" not in ops and details.gelu_fused == 0
        assert details.onnx_graph_rewrites == ["gelu_order"]
    report = check_artifact(result.artifact, loaded)
    assert report.passed, report.failures
    assert max(m.max_rel for s in report.input_sets for m in s.outputs) < 1e-5


def test_onnx_runtime_runs_each_gelu_below_opset_20_as_one_kernel(exports, tmp_path):
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(exports("onnx", 18).artifact), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    assert ops.count("Gelu") == GELUS and "Erf" not in ops


def test_opset_17_runs_in_onnx_reference_evaluator(exports):
    """ONNX's own reference implementation agrees with ONNX Runtime on the converted file."""
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    path = str(exports("onnx", 17).artifact)
    x = np.random.default_rng(0).standard_normal((1, 3, RES, RES)).astype(np.float32)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    got = ReferenceEvaluator(path).run(None, {"image": x})[0]
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-5


def test_inputs_and_outputs_are_described_in_the_file_and_manifest(exports):
    import onnx

    result = exports("onnx", 20)
    graph = onnx.load(str(result.artifact)).graph
    assert "0-1" in graph.input[0].doc_string and "mean" in graph.input[0].doc_string
    assert "logits" in graph.output[0].doc_string
    assert [s.description for s in result.manifest.inputs] == [graph.input[0].doc_string]
    assert [s.description for s in result.manifest.outputs] == [graph.output[0].doc_string]


def _checker_log(path) -> str:
    """What ONNX Runtime's own command-line usability checker prints for `path`."""
    out = subprocess.run([sys.executable, "-m", "onnxruntime.tools.check_onnx_model_mobile_usability", str(path)],
                         capture_output=True, text=True, check=True)
    return out.stdout + out.stderr


@pytest.mark.parametrize("opset, blocker", [(20, "Gelu"), (18, "Erf")])
def test_mobile_usability_in_manifest_matches_ort_checker(opset, blocker, exports):
    result = exports("onnx", opset)
    usability = result.manifest.details.mobile_usability
    log = _checker_log(result.artifact)
    for key, name in (("nnapi", "NNAPI"), ("coreml_mlprogram", "CoreML MLProgram"),
                      ("coreml_neuralnetwork", "CoreML NeuralNetwork")):
        found = re.search(rf"(\d+) partitions with a total of (\d+)/(\d+) nodes can be handled by the {name} EP", log)
        recorded = usability[key]
        assert found and tuple(map(int, found.groups())) == (
            recorded["partitions"], recorded["supported_nodes"], recorded["nodes"]), (key, found)
    assert usability["coreml_mlprogram"]["whole_graph"] and usability["coreml_mlprogram"]["suitability"] == "YES"
    assert not usability["nnapi"]["whole_graph"] and usability["nnapi"]["unsupported_ops"] == [f"ai.onnx:{blocker}"]
    assert usability["summary"].startswith("ORT mobile: CoreML MLProgram EP takes the whole graph; NNAPI ")
    assert usability["summary"] in result.notes and f"({usability['nnapi']['partitions']} " not in usability["summary"]


def test_ort_format_passes_parity_through_onnx_runtime(exports, loaded):
    import onnxruntime as ort

    result = exports("ort", 20)
    assert result.artifact.suffix == ".ort" and result.artifact.read_bytes()[4:8] == b"ORTM"
    session = ort.InferenceSession(str(result.artifact), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"] and [o.name for o in session.get_outputs()] == ["logits"]
    report = check_artifact(result.artifact, loaded, per_block=True)
    assert report.passed, report.failures
    assert report.engine.endswith("ORT format") and "no intermediate tensors" in report.localization.note
    details = result.manifest.details
    assert details.ort_format_version == 6 and details.optimization == {"style": "Fixed",
                                                                             "target_platform": "arm"}
    assert "Gelu" in details.required_operators["ai.onnx;20"]
    assert details.min_onnxruntime == "1.18"  # Gelu-20 from an .ort file (see formats/ort/releases.py)
    assert details.mobile_usability["coreml_mlprogram"]["whole_graph"]
    assert manifests.load(result.artifact).latest_parity.status == "pass"


@pytest.mark.slow  # CI time: opset 20 .ort stays fast
def test_ort_format_below_opset_20(exports, loaded):
    result = exports("ort", 18)
    assert result.manifest.details.min_onnxruntime == "1.16"  # ORT format version 6
    operators = result.manifest.details.required_operators
    assert "Gelu" in operators["com.microsoft;1"]  # the ordered erf chain, fused by the converter
    assert not any("Erf" in ops for ops in operators.values())
    assert check_artifact(result.artifact, loaded, record=False).passed


@pytest.mark.parametrize("args, first", [
    ((17, 8), "1.13"), ((18, 8), "1.14"), ((19, 9), "1.15"), ((20, 9), "1.17"), ((20, 10), "1.18"),
])
def test_min_onnxruntime_table(args, first):
    assert min_onnxruntime(*args) == first


@pytest.mark.parametrize("args, first", [
    ((18, 8, 6), "1.16"), ((20, 9, 6), "1.17"), ((17, 8, 5), "1.13"),
])
def test_min_onnxruntime_of_ort_format(args, first):
    opset, ir_version, ort_format = args
    assert ort_min_onnxruntime(min_onnxruntime(opset, ir_version), ort_format, frozenset()) == first


def test_min_onnxruntime_of_gelu_in_ort_format():
    assert ort_min_onnxruntime(min_onnxruntime(20, 9), 6, frozenset({("ai.onnx", 20, "Gelu")})) == "1.18"


@pytest.mark.parametrize("opset", [16, 21, 0])
def test_opset_out_of_range_is_refused(opset):
    with pytest.raises(UsageError, match=f"--opset {opset}: choose one of 17, 18, 19, 20"):
        OnnxOptions(opset=opset)
