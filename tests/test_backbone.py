"""Dense-prediction backbones end to end at a small non-square size (64x96): a checkpoint in
the mmdet layout exports to ONNX, CoreML and ExecuTorch with four named outputs, each
output matches eager PyTorch, parity passes, a fault injected in stage 3 is located there,
ONNX takes any height and width with --dynamic-shape, and bench runs. The ExecuTorch cases
run in the slow suite (CI time), as do the 512x768 and 224 exports of every format
(test_backbone_slow.py)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from typer.testing import CliRunner

from casvit_deploy.cli import app
from casvit_deploy.model import load_model
from casvit_deploy.model.blocks import block_names
from casvit_deploy.parity import check_artifact
from casvit_deploy.pipeline import export_model
from casvit_deploy.runtime.eager import EagerRunner
from casvit_deploy.settings import Resolution
from casvit_deploy.store import manifests
from casvit_deploy.store.runners import open_runner
from tests.parity_helpers import copy_artifact, perturb_float, reference_weight

SIZE = Resolution(64, 96)
FEATURES = ["feat_s4", "feat_s8", "feat_s16", "feat_s32"]
XS_SHAPES = [(1, 48, 16, 24), (1, 56, 8, 12), (1, 112, 4, 6), (1, 220, 2, 3)]
STAGE3_BLOCK = "network.4.2"
STAGE3_WEIGHT = f"{STAGE3_BLOCK}.mlp.fc2.weight"
FP32_RTOL = 1e-4


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def image(batch: int = 1, size: Resolution = SIZE, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(size.shape(batch)).astype(np.float32)


def max_rel(got: dict, ref: dict) -> float:
    """The worst max|out - ref| / max|ref| over the outputs (same names and shapes required)."""
    assert list(got) == list(ref) and [g.shape for g in got.values()] == [r.shape for r in ref.values()]
    return max(float(np.abs(got[k] - ref[k]).max() / np.abs(ref[k]).max()) for k in ref)


@pytest.fixture(scope="module")
def loaded(xs_backbone_checkpoint):
    return load_model(xs_backbone_checkpoint)


@pytest.fixture(scope="module")
def exports(loaded, tmp_path_factory):
    """format -> ExportResult (fp32, 64x96), each exported lazily once for the module."""
    out, done = tmp_path_factory.mktemp("backbone"), {}

    def get(fmt: str):
        if fmt not in done:
            done[fmt] = export_model(loaded, fmt, out, resolution=SIZE, precision="fp32")
        return done[fmt]

    return get


@pytest.mark.parametrize("fmt", ["onnx", "coreml", pytest.param("executorch", marks=pytest.mark.slow)])  # ExecuTorch: CI time
def test_manifest_records_four_outputs_with_strides(fmt, exports, loaded):
    result = exports(fmt)
    manifest = manifests.load(result.artifact)
    assert result.artifact.name == f"casvit_xs_64x96_fp32_backbone{result.artifact.suffix}"
    assert manifest.is_backbone and manifest.num_classes == 0 and manifest.resolution == SIZE
    assert [o.name for o in manifest.outputs] == FEATURES
    assert [o.shape for o in manifest.outputs] == XS_SHAPES
    assert [o.stride for o in manifest.outputs] == [4, 8, 16, 32] and {o.layout for o in manifest.outputs} == {"NCHW"}
    assert manifest.inputs[0].shape == (1, 3, 64, 96)
    assert "fold_output_norms" in manifest.passes and manifest.preprocessing.resize_mode == "cover"
    assert manifest.details.checkpoint_ignored_keys == {"neck": 3, "rpn_head": 2, "roi_head": 2}
    assert list(manifest.block_outputs) == block_names(loaded.model)
    assert [manifest.block_outputs[f"norm{i}"] for i in (0, 2, 4, 6)] == FEATURES
    check = manifest.details.load_check
    assert check["ran"] and check["failures"] == [] and check["max_rel"] < FP32_RTOL * (5 if fmt == "coreml" else 1)
    assert check["blocks_missing"] == []


@pytest.mark.parametrize("fmt", ["onnx", pytest.param("executorch", marks=pytest.mark.slow)])
def test_every_output_matches_eager_fp32(fmt, exports, loaded):
    with open_runner(exports(fmt).artifact) as runner:
        got = runner.run(image())
    assert max_rel(got, EagerRunner(loaded.model).run(image())) < FP32_RTOL


def test_onnx_backbone_in_the_reference_evaluator(exports, loaded):
    """The ONNX standard's own evaluator agrees with eager PyTorch on all four outputs."""
    import onnx
    from onnx.reference import ReferenceEvaluator

    model = onnx.load(str(exports("onnx").artifact))
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == FEATURES
    props = {p.key: p.value for p in model.metadata_props}
    assert props["resolution"] == "64x96" and props["outputs"].startswith("feat_s4:stride4,feat_s8:stride8")
    got = ReferenceEvaluator(model).run(None, {"image": image()})
    assert max_rel(dict(zip(FEATURES, got)), EagerRunner(loaded.model).run(image())) < FP32_RTOL


def test_coreml_package_interface(exports):
    from casvit_deploy.formats.coreml.mil import load_mlpackage

    result = exports("coreml")
    spec = load_mlpackage(result.artifact).spec
    assert [o.name for o in spec.description.output] == FEATURES
    assert [tuple(o.type.multiArrayType.shape) for o in spec.description.output] == XS_SHAPES
    assert "dense-prediction backbone" in spec.description.metadata.shortDescription
    assert spec.description.metadata.userDefined["resolution"] == "64x96"


@pytest.mark.slow  # a second ExecuTorch export (the classifier's is in test_export.py)
def test_executorch_backbone_is_fully_delegated(exports):
    delegation = exports("executorch").manifest.details.delegation
    assert delegation["portable_nodes"] == 0 and delegation["delegated_subgraphs"] >= 1


def _corrupted(artifact, loaded, folder):
    bad = copy_artifact(artifact, folder)
    target = next(bad.rglob("weight.bin")) if bad.is_dir() else bad
    perturb_float(target, reference_weight(loaded, artifact, STAGE3_WEIGHT), index=7, delta=5.0)
    return bad


@pytest.mark.parametrize("fmt", ["onnx", "coreml", pytest.param("executorch", marks=pytest.mark.slow)])  # ExecuTorch: CI time
def test_parity_passes_then_locates_a_stage_3_fault(fmt, exports, loaded, xs_backbone_checkpoint, tmp_path):
    artifact = exports(fmt).artifact
    good = check_artifact(artifact, inputs="both", samples=3, record=False)
    assert good.passed, good.failures
    for input_set in good.input_sets:
        assert [m.name for m in input_set.outputs] == FEATURES
        assert all(m.top1_agreement is None and m.cosine > 0.99999 and m.snr_db > 60 for m in input_set.outputs)
    bad = _corrupted(artifact, loaded, tmp_path / "bad")
    junit, report = tmp_path / "parity.xml", tmp_path / "parity.json"
    result = invoke("parity", bad, "-c", xs_backbone_checkpoint, "--samples", "3", "--junit", junit,
                    "--json", report, "--allow-modified")  # corrupted on purpose: checked as it is
    assert result.exit_code == 1, result.output
    assert f"first divergent block {STAGE3_BLOCK}" in result.stderr
    data = json.loads(report.read_text())["reports"][0]
    assert data["localization"]["first_divergent"] == STAGE3_BLOCK
    failing = {f.split(":")[1].strip() for f in data["failures"]}
    assert {"feat_s16", "feat_s32"} <= failing and "feat_s4" not in failing  # stage 3 feeds s16 and s32 only
    assert ET.parse(junit).getroot().get("failures") != "0"
    assert manifests.load(bad).latest_parity.status == "fail"


def test_onnx_dynamic_shape_runs_any_multiple_of_32(loaded, tmp_path):
    result = export_model(loaded, "onnx", tmp_path, resolution=SIZE, dynamic_shape=True)
    manifest = result.manifest
    assert result.artifact.name == "casvit_xs_64x96_fp32_backbone_dynamic_hw.onnx" and manifest.dynamic_shape
    assert manifest.inputs[0].shape == (1, 3, "height", "width")
    assert manifest.outputs[1].shape == (1, 56, "height/8", "width/8")
    assert manifest.details.load_check["sizes"] == ["64x96", "96x160"]
    assert manifest.details.load_check["blocks_missing"] == []
    reference = EagerRunner(loaded.model)
    with open_runner(result.artifact) as runner:
        for size in (Resolution(128, 64), Resolution(32, 32), Resolution(96, 224)):
            got = runner.run(image(size=size))
            assert got["feat_s32"].shape == (1, 220, size.height // 32, size.width // 32)
            assert max_rel(got, reference.run(image(size=size))) < FP32_RTOL
    assert check_artifact(result.artifact, inputs="random", samples=2, record=False).passed


def test_dynamic_shape_is_refused_for_fixed_size_formats(tmp_path):
    result = invoke("export", "--backbone", "-f", "onnx,executorch", "--dynamic-shape", "-r", "64x96", "-o", tmp_path)
    assert result.exit_code == 2 and "executorch artifacts take a fixed input size here" in result.stderr
    assert not list(tmp_path.iterdir())


def test_cli_exports_a_backbone_checkpoint_with_a_note(xs_backbone_checkpoint, tmp_path):
    result = invoke("export", "-f", "onnx", "-c", xs_backbone_checkpoint, "-r", "64x96", "-o", tmp_path, "--no-check",
                    "--json", "-")
    assert result.exit_code == 0, result.output
    assert "note: casvit_xs_backbone_mmdet.pth: loaded the backbone, ignored 7 keys" in result.stderr
    assert result.output.count("ignored 7 keys") == 1  # said once (issue 25, item 15)
    row = json.loads(result.stdout)["results"][0]
    assert row["status"] == "ok" and row["file"].endswith("casvit_xs_64x96_fp32_backbone.onnx")


@pytest.mark.slow  # CI time: a third export; the backbone tests run at 64x96
def test_classifier_export_at_a_non_square_size(xs_checkpoint, tmp_path):
    """Non-square sizes are for every model kind: a classifier keeps its one output."""
    loaded = load_model(xs_checkpoint)
    result = export_model(loaded, "onnx", tmp_path, resolution="96x64")
    assert result.artifact.name == "casvit_xs_96x64_fp32.onnx"
    assert result.manifest.inputs[0].shape == (1, 3, 96, 64) and result.manifest.outputs[0].shape == (1, 1000)
    report = check_artifact(result.artifact, loaded, inputs="images", samples=4, record=False)
    assert report.passed and report.input_sets[0].outputs[0].top1_agreement == 1.0


def test_info_describes_the_backbone(xs_backbone_checkpoint):
    result = invoke("info", "-c", xs_backbone_checkpoint, "-r", "512x768", "--json", "-")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert [(o["name"], o["stride"], o["shape"]) for o in facts["outputs"]] == [
        ("feat_s4", 4, [1, 48, 128, 192]), ("feat_s8", 8, [1, 56, 64, 96]), ("feat_s16", 16, [1, 112, 32, 48]),
        ("feat_s32", 32, [1, 220, 16, 24])]
    assert "head" not in facts["gmacs_per_stage"] and facts["resolution"] == {"height": 512, "width": 768}
    assert facts["notes"][0].endswith("ignored 7 keys outside 'backbone.': neck (3), rpn_head (2), roi_head (2)")
    table = invoke("info", "-c", xs_backbone_checkpoint)
    assert "backbone (4 feature maps)" in table.output and table.output.count("ignored 7 keys") == 1


def test_bench_backbone_checkpoint_and_artifact(xs_backbone_checkpoint, exports, tmp_path):
    """GFLOP per image is counted at the given non-square size (2 x MACs), for the model and the artifact."""
    from casvit_deploy.analysis import macs_per_stage

    out = tmp_path / "bench.json"
    args = ["--iters", "2", "--warmup", "0", "--threads", "1", "--json", out]
    result = invoke("bench", "-b", "eager", "-c", xs_backbone_checkpoint, "-r", "64x96", *args)
    assert result.exit_code == 0, result.output
    assert result.output.count("ignored 7 keys") == 1
    row = json.loads(out.read_text())["results"][0]
    flops = 2 * sum(macs_per_stage(load_model(xs_backbone_checkpoint).model, SIZE).values()) / 1e9
    assert row["resolution"] == {"height": 64, "width": 96} and row["gflop_per_image"] == pytest.approx(flops)
    result = invoke("bench", exports("onnx").artifact, *args)
    assert result.exit_code == 0, result.output
    rows = {r["backend"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["onnxruntime"]["gflop_per_image"] == pytest.approx(flops) and "eager" in rows
    wrong = invoke("bench", exports("onnx").artifact, "-r", "64x64", *args)
    assert wrong.exit_code == 2 and "takes 64x96 inputs only" in wrong.stderr
