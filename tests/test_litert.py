"""LiteRT (.tflite), the fast part: the shared 32x32 fp32 export (tests/conftest.py
`small_artifact`) checked through LiteRT's own interpreter against an independent PyTorch
reference, its manifest, every block read inside the file, info and bench; the int8 code path
(quantizer, keep-float, converter config, the fake-int8 trap) and NHWC input on a tiny
model; and the units. Full-size cases (224, int8 agreement and size, backbones, non-square,
NHWC, fp16) and the localization of a corrupted weight (-m slow): tests/test_litert_slow.py and below."""

from __future__ import annotations

import json
import shutil
from functools import partial

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from casvit_deploy.cli import app
from casvit_deploy.errors import ExportError
from casvit_deploy.model import load_model
from casvit_deploy.settings import CalibrationMethod
from casvit_deploy.store.manifests import manifest_path
from tests.litert_helpers import interpreter_outputs, photographs, reference_outputs

pytest.importorskip("ai_edge_litert", reason="the [litert] extra is not installed")
RES = 32  # small_artifact's


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.fixture
def tflite(small_artifact, tmp_path):
    """A private copy of the shared fp32 export and its manifest."""
    source = small_artifact("litert")
    target = tmp_path / source.name
    shutil.copy(source, target)
    shutil.copy(manifest_path(source), manifest_path(target))
    return target


def test_fp32_file_matches_an_independent_reference_in_litert_own_interpreter(small_artifact):
    images = photographs(RES)
    got = interpreter_outputs(small_artifact("litert"), images)
    ref = reference_outputs(load_model(None, "xs").model, images)
    assert list(got) == ["logits"] and got["logits"].shape == (len(images), 1000)
    assert np.abs(got["logits"] - ref["logits"]).max() <= 1e-4


def test_the_manifest_says_what_the_file_is(small_export):
    from casvit_deploy.formats.litert import flatbuffer

    export = small_export("litert")
    details, data = export.manifest.details, export.artifact.read_bytes()
    assert details.ops["verdict"] == "float" and details.ops["int8_compute_ops"] == 0
    assert details.ops["ops"]["CONV_2D"] == 115 and "CUSTOM" not in str(details.ops["ops"])
    assert details.delegate["partitions"] == 1 and details.delegate["outside"] == {}
    assert details.runtime["min_runtime_version"] == "2.9.0" and details.io_quantization is None
    check = details.load_check
    assert check["blocks_missing"] == [] and check["blocks_found"] == len(export.manifest.block_outputs)
    assert [s.name for s in export.manifest.inputs] == ["image"] and export.manifest.inputs[0].layout == "NCHW"
    recorded = json.loads(flatbuffer.metadata(data)[flatbuffer.METADATA])
    assert recorded["variant"] == "xs" and recorded["resolution"] == str(RES)
    assert export.manifest.tools["litert-torch"] and export.manifest.tools["ai-edge-litert"]


def test_every_block_output_is_read_inside_the_file(tflite):
    from casvit_deploy.parity import check_artifact

    report = check_artifact(tflite, per_block=True, record=False, samples=2)
    blocks = report.localization.blocks
    assert report.passed and report.localization.first_divergent is None
    assert [b.status for b in blocks] == ["ok"] * len(blocks) and len(blocks) == 15
    assert all(b.rel_err < 1e-4 for b in blocks)


def _scaled_weight(path, inside: str) -> None:
    """Multiply by 3 the first conv weight whose tensor name says it lies in module chain `inside`."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    graph = model.subgraphs[0]
    tensor = next(t for t in graph.tensors if inside in (t.name or b"").decode() and t.buffer
                  and len(model.buffers[t.buffer].data) >= 64 and len(t.shape) == 4)
    buffer = model.buffers[tensor.buffer]
    buffer.data = (np.frombuffer(bytes(buffer.data), np.float32) * 3).view(np.uint8)
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))


@pytest.mark.slow  # CI time: its fast sibling on the same code path is the test above (every block read)
def test_a_corrupted_weight_is_localized_to_its_block(tflite):
    from casvit_deploy.parity import check_artifact

    _scaled_weight(tflite, "Sequential_4/casvit_deploy.model.casvit.AdditiveBlock_2/")
    report = check_artifact(tflite, record=False, samples=2, allow_modified=True)
    assert not report.passed and report.localization.first_divergent == "network.4.2"
    statuses = {b.block: b.status for b in report.localization.blocks}
    assert statuses["network.4.1"] == "ok" and statuses["network.4.2"] == "diverged"


def test_info_reads_what_the_file_computes(tflite):
    facts = json.loads(invoke("info", tflite, "--json", "-").stdout)
    assert facts["format"] == "litert" and facts["matches_manifest"]
    assert facts["file"]["computes"] == "fp32" and facts["file"]["census"]["verdict"] == "float"
    assert facts["target"]["min_runtime_version"] == "2.9.0"
    manifest_path(tflite).unlink()
    bare = json.loads(invoke("info", tflite, "--json", "-").stdout)
    assert bare["manifest"] is None and bare["file"]["computes"] == "fp32"


def test_bench_times_the_file_with_the_threads_asked(tflite):
    result = invoke("bench", tflite, "--iters", "2", "--warmup", "1", "--rounds", "1", "--threads", "2",
                    "--no-baseline", "--json", "-")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["results"]
    assert row["backend"] == "litert" and "XNNPACK, 2 threads" in row["engine"]


# --- the int8 path, the fake-int8 trap and NHWC on a tiny model ------------------------------

class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.body = torch.nn.Conv2d(8, 8, 1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return x + self.body(x)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = Tiny().eval()
    x = torch.randn(1, 3, 16, 16)
    return model, x, torch.export.export(model, (x,))


def _converted(module, x, config=None) -> bytes:
    from casvit_deploy.formats.litert.convert import _quiet

    with _quiet():
        import litert_torch

        return bytes(litert_torch.convert(module, (x,), quant_config=config).model_content())


def _int8_module(program, x, keep_float=lambda origin: False):
    from casvit_deploy.formats.litert import quantizer
    from casvit_deploy.quantize import pt2e

    images = torch.randn(4, 3, *x.shape[2:]).numpy()
    return pt2e.quantize(program, images, 1, partial(quantizer.quantizer, CalibrationMethod.MINMAX), keep_float,
                         fold=False)


def test_int8_is_real_int8_and_the_fake_int8_trap_is_refused(tiny, tmp_path):
    from casvit_deploy.formats.litert import flatbuffer, quantizer
    from casvit_deploy.formats.litert.convert import _require
    from casvit_deploy.settings import Precision

    _, x, program = tiny
    module = _int8_module(program, x)
    real = flatbuffer.census(_converted(module, x, quantizer.converter_config(CalibrationMethod.MINMAX)))
    fake_file = _converted(module, x)
    fake = flatbuffer.census(fake_file)
    assert real["verdict"] == "int8" and real["compute"]["CONV_2D"] == {"INT8": 2}
    assert fake["verdict"] == "fake-int8" and fake["int8_compute_ops"] == 0 and fake["quantize_dequantize_pairs"]
    _require(real, Precision.INT8)
    with pytest.raises(ExportError, match="fake int8"):
        _require(fake, Precision.INT8)
    path = tmp_path / "fake.tflite"  # a fake-int8 file from elsewhere: info labels it float
    path.write_bytes(fake_file)
    facts = json.loads(invoke("info", path, "--json", "-").stdout)["file"]
    assert facts["computes"] == "fp32" and facts["summary"].startswith("float (fake int8)")


def test_keep_float_leaves_that_module_float(tiny):
    from casvit_deploy.formats.litert import flatbuffer, quantizer

    _, x, program = tiny
    module = _int8_module(program, x, keep_float=lambda origin: origin.inside("body"))
    found = flatbuffer.census(_converted(module, x, quantizer.converter_config(CalibrationMethod.MINMAX)))
    assert found["verdict"] == "int8" and found["compute"]["CONV_2D"] == {"FLOAT32": 1, "INT8": 1}


def test_fp16_weights_and_nhwc_input(tiny, tmp_path):
    from casvit_deploy.formats.litert import flatbuffer
    from casvit_deploy.formats.litert.convert import channels_last_input, fp16_weights
    from casvit_deploy.formats.litert.runner import interpreter, ports

    model, x, program = tiny
    data = _converted(channels_last_input(program.module()), x.permute(0, 2, 3, 1).contiguous())
    halved = fp16_weights(data)
    assert flatbuffer.census(halved)["verdict"] == "fp16-weights" and flatbuffer.census(data)["verdict"] == "float"
    path = tmp_path / "tiny.tflite"
    path.write_bytes(data)
    engine = interpreter(path, 1)
    (image,), (out,) = ports(engine)
    assert image.shape == (1, 16, 16, 3) and image.nhwc
    engine.set_tensor(image.index, x.permute(0, 2, 3, 1).contiguous().numpy())
    engine.invoke()
    with torch.no_grad():
        want = model(x).permute(0, 2, 3, 1).numpy() if out.shape[-1] == 8 else model(x).numpy()
    assert np.abs(engine.get_tensor(out.index) - want).max() < 1e-5


# --- units ---------------------------------------------------------------------------------------

def test_int8_ports_quantize_as_an_app_must():
    from casvit_deploy.formats.litert.runner import Port

    port = Port("image", 0, (1, 3, 4, 4), "int8", scale=0.5, zero_point=-3)
    x = np.array([-100.0, -0.26, 0.0, 0.74, 100.0], dtype=np.float32)
    q = port.quantize(x)
    assert q.dtype == np.int8 and q.tolist() == [-128, -4, -3, -2, 127]
    assert port.dequantize(q).tolist() == [-62.5, -0.5, 0.0, 0.5, 65.0]
    assert Port("x", 0, (1, 8, 8, 3), "float32").nhwc and not Port("x", 0, (1, 3, 8, 8), "float32").nhwc


def test_tensor_names_map_back_to_modules_and_blocks():
    from casvit_deploy.formats.litert.blocks import block_tensors, module_path

    chains = {("S_0",): "network.0", ("S_0", "B_1"): "network.0.1", ("S_2",): "network.2",
              ("S_2", "B_1"): "network.2.1", ("S_2", "B_1", "S_0"): "network.2.1.gate.0"}
    assert module_path("root.CASViT/S_2/B_1/S_0/C_1;2", chains) == "network.2.1.gate.0"
    assert module_path("root.CASViT/S_0/B_1;;root.CASViT/S_2/B_1", chains) == "network.0.1"  # the op's own name
    assert module_path("wrapper/root.CASViT_model/S_2/B_1;3", chains) == "network.2.1"
    assert module_path("serving_default_image", chains) is None
    names = ["in", "r/S_2/B_1/S_0/C_0", "r/S_2/B_1;2", "r/S_2/B_1;3", "r/S_2/B_1;4"]
    ops = [("CONV_2D", [1]), ("ADD", [2]), ("ADD", [3]), ("TRANSPOSE", [4])]
    assert block_tensors(ops, names, chains, ["network.2.1", "network.0.1"]) == {"network.2.1": 3}


def test_delegate_partitions_and_what_stays_outside():
    from casvit_deploy.formats.litert.delegate import _covered

    ops = [{"index": 0, "inputs": [0], "outputs": [1]}, {"index": 1, "inputs": [1], "outputs": [2]},
           {"index": 2, "inputs": [2], "outputs": [3]}, {"index": 3, "inputs": [3], "outputs": [4]}]
    partitions = [{"inputs": [0], "outputs": [2]}, {"inputs": [3], "outputs": [4]}]
    assert _covered(ops, partitions) == {0, 1, 3}  # op 2 runs outside, between the two partitions


@pytest.mark.parametrize("census, verdict", [
    ({"int8_compute_ops": 3, "quantize_dequantize_pairs": 0, "weights": {"INT8": 2}}, "int8"),
    ({"int8_compute_ops": 0, "quantize_dequantize_pairs": 9, "weights": {"FLOAT32": 2}}, "fake-int8"),
    ({"int8_compute_ops": 0, "quantize_dequantize_pairs": 0, "weights": {"FLOAT16 -> DEQUANTIZE": 2}}, "fp16-weights"),
    ({"int8_compute_ops": 0, "quantize_dequantize_pairs": 0, "weights": {"INT8 -> DEQUANTIZE": 2}}, "int8-weights"),
    ({"int8_compute_ops": 0, "quantize_dequantize_pairs": 0, "weights": {"INT8": 2}}, "dynamic-range"),
    ({"int8_compute_ops": 0, "quantize_dequantize_pairs": 0, "weights": {"FLOAT32": 2}}, "float"),
])
def test_verdicts(census, verdict):
    from casvit_deploy.formats.litert.flatbuffer import verdict as judge

    assert judge(census) == verdict


@pytest.mark.parametrize("args, message", [
    (["-f", "litert", "-p", "int8", "--quantize-residual"], "--quantize-residual is not offered for litert"),
    (["-f", "litert", "--dynamic-batch"], "LiteRT export takes a fixed batch"),
    (["-f", "onnx", "--input-layout", "nhwc"], "--input-layout applies to litert only"),
    (["-f", "litert", "-p", "w8a8"], "litert export supports precision fp32 or fp16 or int8, not 'w8a8'"),
    (["-f", "litert", "--input-layout", "nchw4"], "'nchw4' is not one of"),
])
def test_requests_litert_cannot_build_are_refused_before_any_work(args, message, tmp_path):
    result = invoke("export", *args, "-r", RES, "-o", tmp_path)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not any(tmp_path.iterdir())
