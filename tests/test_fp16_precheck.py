"""The fp16 pre-check and --fp16-safe: a checkpoint whose late-stage activations exceed the
fp16 range (network.6.1's MLP output scaled up) is flagged with the block named, its plain
fp16 CoreML package fails (export's load check, and parity with the first divergent block
named), and with --fp16-safe the flagged blocks run in fp32 and the package passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.data.calibration import calibration_set
from casvit_deploy.errors import ExportError
from casvit_deploy.export.graph import export_program
from casvit_deploy.formats.coreml.fp16_check import FP16_MAX, _judge, fp16_precheck, fp16_selector, keep_fp32_ops
from casvit_deploy.formats.coreml.options import CoreMLOptions
from casvit_deploy.model import load_model
from casvit_deploy.parity import check_artifact
from casvit_deploy.pipeline import export_model
from casvit_deploy.rewrite import deploy_form
from casvit_deploy.store import manifests

RES = 64
SCALED = "network.6.1.mlp.fc2.weight"
SCALE = 1e6  # network.6.1's output reaches ~2e5 on the calibration images, past fp16's 65504


@pytest.fixture(scope="module")
def images():
    return calibration_set(Preprocessing.for_resolution(RES), samples=8).images


@pytest.fixture(scope="module")
def crafted_checkpoint(trained_like_checkpoint, tmp_path_factory):
    state = torch.load(trained_like_checkpoint("xs", RES))
    state[SCALED] = state[SCALED] * SCALE
    path = tmp_path_factory.mktemp("crafted") / "casvit_xs_fp16_overflow.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def crafted(crafted_checkpoint):
    return load_model(crafted_checkpoint)


def test_trained_like_model_is_clean_in_one_line(trained_like_checkpoint, images):
    model = deploy_form(load_model(trained_like_checkpoint("xs", RES)).model)[0]
    report = fp16_precheck(model, images)
    assert report.findings == [] and report.blocks == 15 and report.images == 8
    assert report.summary().startswith("fp16 pre-check: clean") and "\n" not in report.summary()
    assert report.max_abs < FP16_MAX and report.min_snr_db > 40


def test_scaled_late_stage_is_flagged_with_the_block_named(crafted, images):
    report = fp16_precheck(deploy_form(crafted.model)[0], images)
    assert report.flagged[0] == "network.6.1" and set(report.flagged) <= {"network.6.1", "head"}
    finding = report.findings[0]
    assert finding.max_abs > FP16_MAX and "overflow" in finding.problems[0]
    assert "network.6.1 (overflow" in report.summary()


def test_judge_flags_underflow_and_lost_snr():
    ref = torch.full((1000,), 1e-3)
    flushed = torch.where(torch.arange(1000) < 50, torch.zeros(1000), ref)  # 5% flushed to zero
    finding = _judge("b", flushed, ref, 1e-3)
    assert any("underflow: 5.0%" in p for p in finding.problems)
    noisy = ref * (1 + 0.1 * torch.from_numpy(np.random.default_rng(0).standard_normal(1000)).float())
    assert any(p.startswith("SNR 20") for p in _judge("b", noisy, ref, 1e-3).problems)
    assert _judge("b", ref.half().float(), ref, 1e-3).problems == []


def test_kept_ops_cover_the_block_and_the_glue_before_the_head(crafted):
    model = deploy_form(crafted.model)[0]
    program = export_program(model, 1, RES, False)
    names = keep_fp32_ops(program, model, ["network.6.1", "head"])
    nodes = {n.name: n for n in program.graph.nodes}
    assert any(str(nodes[n].target).startswith("aten.mean") for n in names)  # the pooling feeds the head
    assert any(str(nodes[n].target).startswith("aten.linear") for n in names)
    assert not keep_fp32_ops(program, model, ["network.6.1"]) & keep_fp32_ops(program, model, ["network.6.0"])

    class Op:
        def __init__(self, name):
            self.name, self.outputs = name, [type("V", (), {"name": name})()]

    select = fp16_selector({"linear", "add_39"})
    assert not select(Op("linear_0")) and not select(Op("add_39")) and select(Op("add_3")) and select(Op("add_390"))


def test_plain_fp16_export_fails_and_fp16_safe_passes(crafted, tmp_path, monkeypatch):
    options = CoreMLOptions(fp16_safe=False)
    with pytest.raises(ExportError, match=r"NaN/Inf.*network\.6\.1 \(overflow.*--fp16-safe"):
        export_model(crafted, "coreml", tmp_path / "plain", resolution=RES, options=options)
    assert not any((tmp_path / "plain").glob("*.mlpackage"))

    safe = export_model(crafted, "coreml", tmp_path / "safe", resolution=RES, options=CoreMLOptions(fp16_safe=True))
    details = manifests.load(safe.artifact).details
    kept = details.fp16_safe["kept_fp32"]
    assert "network.6.1" in kept and "overflow" in kept["network.6.1"] and details.fp16_safe["ops_kept_fp32"] > 5
    report = check_artifact(safe.artifact, crafted, per_block=True, record=False)
    assert report.passed, report.failures

    # the plain package, published past the load check that refuses it, fails parity too
    from casvit_deploy.export.base import LoadCheck
    from casvit_deploy.pipeline import export as api

    monkeypatch.setattr(api, "load_check", lambda *a, **k: LoadCheck(True, "skipped by the test"))
    plain = export_model(crafted, "coreml", tmp_path / "plain", resolution=RES, options=options)
    report = check_artifact(plain.artifact, crafted, record=False)
    assert not report.passed and any("NaN/Inf" in f for f in report.failures)
    assert report.localization.first_divergent == "network.6.1"


def test_precheck_sees_every_input_set_the_gate_feeds(images):
    """The pre-check's inputs hold the calibration images, the gate's seeded random set and the
    gate's photographs, sample for sample (issue 25, item 9)."""
    from types import SimpleNamespace

    from casvit_deploy.formats.coreml.convert import gate_inputs
    from casvit_deploy.parity.inputs import build_input_sets
    from casvit_deploy.settings import Resolution

    pre = Preprocessing.for_resolution(RES)
    seen = gate_inputs(SimpleNamespace(preprocessing=pre, resolution=Resolution.parse(RES)), images)
    for gate_set in [images, *(s.images for s in build_input_sets("both", RES, preprocessing=pre))]:
        for sample in gate_set:
            assert any(np.array_equal(sample, other) for other in seen), "the pre-check misses a gate input"
