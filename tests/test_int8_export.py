"""int8 exports of XS (64x64, 8 calibration images, trained-like weights): artifacts their
runtimes and ONNX's own tools accept, that agree with fp32 eager, carry a complete
quantization record, pass parity with a per-block SQNR table, and keep float what is asked."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from casvit_deploy.artifacts.options import Int8Options
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.cli import app
from casvit_deploy.data.calibration import calibration_set
from casvit_deploy.formats.executorch.options import ExecuTorchOptions
from casvit_deploy.formats.executorch.speed import SPEED_MIN_COSINE
from casvit_deploy.formats.onnx.options import OnnxOptions
from casvit_deploy.formats.onnx.quantize import NPU_PROVIDERS
from casvit_deploy.machine import cpu_model, int8_isa
from casvit_deploy.model import load_model
from casvit_deploy.numerics import compare, defaults_for
from casvit_deploy.parity import check_artifact
from casvit_deploy.pipeline import export_model
from casvit_deploy.rewrite import deploy_form
from casvit_deploy.settings import Precision
from casvit_deploy.store import manifests
from casvit_deploy.store.runners import open_runner
from tests.fakes import system_temp_forbidden

RES = 64
SAMPLES = 8  # 4 photographs + 4 noise images
INT8 = Int8Options(calibration_samples=SAMPLES)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def loaded(trained_like_checkpoint):
    return load_model(trained_like_checkpoint("xs", RES))


@pytest.fixture(scope="module")
def onnx_int8(loaded, tmp_path_factory):
    return export_model(loaded, "onnx", tmp_path_factory.mktemp("onnx8"), resolution=RES, precision="int8",
                        options=OnnxOptions(int8=INT8))


@pytest.fixture(scope="module")
def pte_int8(loaded, tmp_path_factory):
    pytest.importorskip("executorch")
    return export_model(loaded, "executorch", tmp_path_factory.mktemp("pte8"), resolution=RES, precision="int8",
                        options=ExecuTorchOptions(int8=INT8))


def _fp32_bytes(loaded) -> int:
    """The least an fp32 artifact of the deploy form stores: 4 bytes per parameter."""
    model = deploy_form(loaded.model)[0]
    return sum(4 * t.numel() for t in model.state_dict().values() if t.is_floating_point())


def _check_record(result, fp32_size: int, kept=("residual-adds",)):
    q = result.manifest.quantization
    assert result.manifest.precision is Precision.INT8 and q is not None
    expected = calibration_set(Preprocessing.for_resolution(RES), samples=SAMPLES)
    assert (q.calibration.sha256, q.calibration.samples, q.calibration.photos) == (expected.sha256, 8, 4)
    assert "target domain" in q.calibration.description
    assert [k.target for k in q.kept_float] == list(kept) and all(k.reason for k in q.kept_float)
    limits = defaults_for(Precision.INT8)
    assert q.agreement["cosine"] >= limits.min_cosine and q.agreement["samples"] == 4
    assert result.manifest.size_bytes <= 0.30 * fp32_size
    again = manifests.load(result.artifact)
    assert again.quantization == q and again.options.int8 == INT8


def test_onnx_int8_is_a_checked_u8s8_per_channel_qdq_graph(onnx_int8, loaded, tmp_path):
    import onnx

    model = onnx.load(str(onnx_int8.artifact))
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 100 and ops.count("DequantizeLinear") > ops.count("QuantizeLinear")
    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    for conv in convs:  # every weight is int8 per-channel (one scale per output channel), activations uint8
        weight_dq = producers[conv.input[1]]
        assert weight_dq.op_type == "DequantizeLinear" and inits[weight_dq.input[0]].data_type == onnx.TensorProto.INT8
        assert len(onnx.numpy_helper.to_array(inits[weight_dq.input[1]])) == inits[weight_dq.input[0]].dims[0]
        x_dq = producers[conv.input[0]]
        assert x_dq.op_type == "DequantizeLinear" and inits[x_dq.input[2]].data_type == onnx.TensorProto.UINT8
    residual = [n for n in model.graph.node if n.op_type == "Add"
                and any(producers.get(i) is not None and producers[i].op_type == "Add" for i in n.input)]
    assert residual  # the residual stream flows float from add to add
    fp32 = export_model(loaded, "onnx", tmp_path, resolution=RES)
    _check_record(onnx_int8, fp32.manifest.size_bytes)
    speed = onnx_int8.manifest.quantization.cpu_speed_ratio
    assert speed["ratio"] > 0 and speed["threads"] >= 1 and "CPUExecutionProvider" in speed["runtime"]
    assert speed["cpu"] == cpu_model() and speed["int8_isa"] == int8_isa()  # the machine it was timed on
    assert speed["npu_only"] == (speed["ratio"] < 1)
    assert (speed["intended_for"] == NPU_PROVIDERS) == speed["npu_only"]
    said = [note for note in onnx_int8.notes if note.startswith("int8 is")]
    assert len(said) == 1 and ("not a CPU speed-up" in said[0]) == speed["npu_only"]


def test_onnx_int8_matches_onnx_reference_semantics(onnx_int8):
    """ONNX's reference evaluator runs the QDQ graph op by op in float, as ONNX Runtime does
    with its graph optimizations off; with them on, ONNX Runtime fuses Q/DQ pairs into int8
    kernels whose rounding differs by an LSB here and there (the error then propagates)."""
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    image = calibration_set(Preprocessing.for_resolution(RES), samples=2).images[:1]
    reference = ReferenceEvaluator(str(onnx_int8.artifact)).run(None, {"image": image})[0]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = ort.InferenceSession(str(onnx_int8.artifact), options, providers=["CPUExecutionProvider"])
    assert compare("logits", plain.run(None, {"image": image})[0], reference).cosine > 0.9999
    with open_runner(onnx_int8.artifact) as runner:
        fused = runner.run(image)["logits"]
    assert compare("logits", fused, reference).cosine > 0.99


def test_onnx_int8_parity_passes_with_a_per_block_sqnr_table(onnx_int8, loaded):
    report = check_artifact(onnx_int8.artifact, loaded, per_block=True, record=False)
    assert report.passed, report.failures
    assert report.thresholds == defaults_for(Precision.INT8)
    blocks = report.localization.blocks
    assert [b.status for b in blocks] == ["ok"] * len(blocks) and blocks[-1].block == "head"
    assert all(b.sqnr_db is not None and 10 < b.sqnr_db < 80 for b in blocks)


def test_keep_float_leaves_a_block_float(loaded, tmp_path):
    """... and ONNX Runtime's quantizer writes its temporary files (pre.onnx, the augmented
    calibration model) in the export's staging folder, never in the system temp folder."""
    import onnx

    options = OnnxOptions(int8=Int8Options(calibration_samples=SAMPLES, keep_float=("network.2.0", "head")))
    with system_temp_forbidden(tmp_path):
        result = export_model(loaded, "onnx", tmp_path / "out", resolution=RES, precision="int8", options=options)
    inits = {i.name: i.data_type for i in onnx.load(str(result.artifact)).graph.initializer}
    kept = [n for n, t in inits.items() if n.startswith(("network.2.0.", "head.")) and n.endswith(".weight")]
    assert kept and all(inits[n] == onnx.TensorProto.FLOAT for n in kept)
    assert any(n.startswith("network.2.1.") and t == onnx.TensorProto.INT8 for n, t in inits.items())
    assert [k.target for k in result.manifest.quantization.kept_float] == ["residual-adds", "network.2.0", "head"]


@pytest.mark.slow  # the ExecuTorch int8 export alone takes about 3 minutes on 2 cores
def test_executorch_int8_lowers_whole_and_passes_parity(pte_int8, loaded):
    details = pte_int8.manifest.details
    assert details.delegation["portable_nodes"] == 0 and details.delegation["delegated_subgraphs"] >= 1
    q = pte_int8.manifest.quantization
    choice = q.config["speed_choice"]  # formats/executorch/speed.py, on by default
    _check_record(pte_int8, _fp32_bytes(loaded), kept=("residual-adds", *choice["chosen"]))
    assert (choice["cpu"], choice["int8_isa"]) == (cpu_model(), int8_isa())  # the machine it was timed on
    trials = {tuple(t["kept_float"]): t for t in choice["trials"]}
    assert () in trials and set(choice["op_kinds"]) == {"depthwise", "multiplies"}
    chosen = trials[tuple(choice["chosen"])]
    assert chosen["vs_fp32"] == max(t["vs_fp32"] for t in trials.values() if t["cosine"] >= SPEED_MIN_COSINE)
    assert q.cpu_speed_ratio["ratio"] == chosen["vs_fp32"] and q.cpu_speed_ratio["npu_only"] is False
    report = check_artifact(pte_int8.artifact, loaded, per_block=True, record=False)
    assert report.passed, report.failures
    loc = report.localization
    assert "PT2E" in loc.method and "cosine" in loc.note
    assert all(b.sqnr_db is not None for b in loc.blocks) and loc.blocks[-1].block == "head"
    tie = float(loc.note.rsplit("cosine ", 1)[1])
    assert tie > 0.99  # the simulation the table comes from computes what the .pte computes


def test_int8_cli_export_and_parity_json(loaded, trained_like_checkpoint, tmp_path):
    ckpt = trained_like_checkpoint("xs", RES)
    result = invoke("export", "-c", ckpt, "-f", "onnx", "-p", "int8", "-r", RES, "--calibration-samples", SAMPLES,
                    "--keep-float", "gates", "-o", tmp_path, "--json", tmp_path / "export.json")
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "export.json").read_text())["results"][0]
    assert row["status"] == "ok" and row["parity"] == "pass"
    artifact = tmp_path / f"casvit_xs_64_int8_n{SAMPLES}_keep-gates.onnx"  # the name says the options
    report = tmp_path / "parity.json"
    result = invoke("parity", artifact, "-c", ckpt, "--inputs", "images", "--per-block", "--json", report)
    assert result.exit_code == 0, result.output
    assert "SQNR" in result.output and " dB" in result.output
    data = json.loads(report.read_text())["reports"][0]
    assert data["precision"] == "int8" and data["thresholds"]["atol"] is None
    assert all(b["sqnr_db"] is not None for b in data["localization"]["blocks"])


@pytest.mark.parametrize("args, message", [
    (("-f", "onnx", "--calibration-samples", "4"), "--calibration-samples applies to --precision int8 or w8a8 only"),
    (("-f", "onnx", "-p", "int8", "--keep-float", "network.9.9"), "--keep-float 'network.9.9': not a block"),
    (("-f", "onnx", "-p", "int8", "--calibration", "no-such-folder"), "--calibration no-such-folder is not a folder"),
    (("-f", "onnx", "-p", "int8", "--calibration-method", "histogram"), "onnx int8 export offers percentile"),
    (("-f", "onnx", "-p", "w8a8"), "onnx export supports precision"),
    (("-f", "executorch", "-p", "int8", "--min-cosine", "2"), "--min-cosine"),
    (("-f", "executorch", "--no-speed-choice"), "--no-speed-choice applies to --precision int8 only"),
])
def test_bad_int8_requests_exit_2_with_one_line(args, message, tmp_path):
    result = invoke("export", "-r", RES, "-o", tmp_path / "out", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_int8_photographs_disagree_less_than_a_broken_artifact(onnx_int8, loaded):
    """The agreement defaults separate a healthy int8 artifact from one with a wrong scale."""
    images = calibration_set(Preprocessing.for_resolution(RES)).photographs
    with open_runner(onnx_int8.artifact) as runner:
        out = np.concatenate([runner.run(images[i:i + 1])["logits"] for i in range(len(images))])
    from casvit_deploy.runtime.eager import EagerRunner

    ref = EagerRunner(loaded.model).run(images)["logits"]
    from casvit_deploy.numerics import metric_failures

    limits = defaults_for(Precision.INT8)
    assert metric_failures(compare("logits", out, ref), limits) == []
    shuffled = out[::-1].copy()  # logits of other photographs: what a broken input layout gives
    assert metric_failures(compare("logits", shuffled, ref), limits)


def test_auto_keep_float_trials_read_the_logits_the_artifact_gives(onnx_int8):
    """A trial's final output is the graph's own output from a plain run, not an internal
    value read through extra outputs: the search judges what ships."""
    from casvit_deploy.data.batches import run_in_batches
    from casvit_deploy.formats.onnx import quantize as ort
    from casvit_deploy.model.blocks import FINAL_OUTPUT

    images = calibration_set(Preprocessing.for_resolution(RES)).photographs
    with open_runner(onnx_int8.artifact) as runner:
        outputs = ort.block_outputs(runner, dict(onnx_int8.manifest.block_outputs), images, 1)
        plain = run_in_batches(runner.run, images, 1)[runner.output_names[0]]
    assert np.array_equal(outputs[FINAL_OUTPUT], plain) and len(outputs) > 10


def test_info_shows_what_stayed_float_and_the_cpu_speed_measured_at_export(onnx_int8):
    import json

    from typer.testing import CliRunner

    from casvit_deploy.cli import app

    shown = CliRunner().invoke(app, ["info", str(onnx_int8.artifact), "--json", "-"])
    assert shown.exit_code == 0, shown.output
    quantization = json.loads(shown.stdout)["quantization"]
    assert quantization["kept_float"] == ["residual-adds"] and quantization["agreement"]["cosine"] > 0.98
    assert quantization["cpu_speed"]["cpu"] == cpu_model()
    table = CliRunner().invoke(app, ["info", str(onnx_int8.artifact)], env={"COLUMNS": "200"}).stdout
    assert "kept float: residual-adds" in table and f"int8 vs fp32 on {cpu_model()}" in table
