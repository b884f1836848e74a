"""int8 building blocks without an export: trained-like weights, calibration sets, keep-float
targets, agreement thresholds, per-block error, the greedy search, options and manifest records."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from casvit_deploy.artifacts.options import Int8Options, from_record, to_record
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.artifacts.records import CalibrationRecord, KeptFloat, QuantizationRecord
from casvit_deploy.data.batches import chunks, run_in_batches
from casvit_deploy.data.calibration import TARGET_DOMAIN_NOTE, calibration_set
from casvit_deploy.errors import UsageError
from casvit_deploy.formats.executorch.options import ExecuTorchOptions
from casvit_deploy.model import build_model, random_model
from casvit_deploy.model.blocks import block_names
from casvit_deploy.model.trained_like import calibrate_batchnorms, trained_like_model
from casvit_deploy.numerics import ThresholdOverrides, compare, defaults_for, metric_failures
from casvit_deploy.numerics.blocks import block_errors
from casvit_deploy.quantize.search import LABELLED, Criterion, Trial, measure, next_block, search
from casvit_deploy.quantize.targets import NodeOrigin, check_targets, covers, keeps_float
from casvit_deploy.rewrite import deploy_form
from casvit_deploy.settings import CalibrationMethod, Precision
from casvit_deploy.store import manifests
from tests.manifest_helpers import minimal_manifest

RES = 64


@pytest.fixture(scope="module")
def calibration():
    return calibration_set(Preprocessing.for_resolution(RES))


# --- trained-like weights ----------------------------------------------------------------------

def test_batchnorm_statistics_are_those_of_their_inputs(calibration):
    model = random_model("xs", seed=3)
    images = torch.from_numpy(calibration.images)
    calibrate_batchnorms(model, images)
    seen = {}
    def record(module, args):
        seen[module] = args[0].double()

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        model(images)
    for hook in hooks:
        hook.remove()
    assert len(seen) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for bn, x in seen.items():  # every BN normalizes its own input to zero mean, unit variance
        assert torch.allclose(bn.running_mean.double(), x.mean((0, 2, 3)), atol=1e-4 * (1 + x.abs().max()))
        assert torch.allclose(bn.running_var.double(), x.var((0, 2, 3), unbiased=False), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("variant", ["xs", "s"])
def test_trained_like_logits_stay_finite_and_spread_at_twice_the_input_scale(calibration, variant):
    images = torch.from_numpy(calibration.images)
    model = trained_like_model(variant, images, seed=1)
    photos = torch.from_numpy(calibration.photographs)
    with torch.no_grad():
        logits, doubled = model(photos), model(2 * photos)
    assert torch.isfinite(doubled).all() and doubled.abs().max() < 1e3
    assert logits.std() > 0.3  # spread: top-1 comparisons mean something
    assert len(set(logits.argmax(1).tolist())) > len(photos) // 2  # not one class for every photograph
    again = trained_like_model(variant, images, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


# --- calibration sets --------------------------------------------------------------------------

def test_default_calibration_set_is_photographs_then_seeded_noise(calibration):
    assert len(calibration) == 32 and calibration.photos == 16
    assert calibration.images.shape == (32, 3, RES, RES) and calibration.images.dtype == np.float32
    assert calibration.sources[0].startswith("skimage.data.") and calibration.sources[-1].startswith("normal(")
    assert TARGET_DOMAIN_NOTE in calibration.description
    assert calibration.sha256 == calibration_set(Preprocessing.for_resolution(RES)).sha256  # reproducible
    small = calibration_set(Preprocessing.for_resolution(RES), samples=5)
    assert (len(small), small.photos) == (5, 3) and small.sha256 != calibration.sha256


def test_calibration_folder_and_bad_input(tmp_path):
    import skimage.data
    import skimage.io

    for i, name in enumerate(("astronaut", "coffee", "chelsea")):
        skimage.io.imsave(tmp_path / f"{i}.png", getattr(skimage.data, name)())
    (tmp_path / "notes.txt").write_text("not an image")
    found = calibration_set(Preprocessing.for_resolution(RES), tmp_path, samples=2)
    assert (len(found), found.photos) == (2, 2) and str(tmp_path) in found.description
    with pytest.raises(UsageError, match="--calibration .* is not a folder"):
        calibration_set(Preprocessing.for_resolution(RES), tmp_path / "missing")
    with pytest.raises(UsageError, match="--calibration-samples"):
        calibration_set(Preprocessing.for_resolution(RES), samples=0)


def test_chunks_pad_the_last_batch_and_run_in_batches_drops_the_padding():
    images = np.arange(5, dtype=np.float32).reshape(5, 1, 1, 1)
    assert [c[:, 0, 0, 0].tolist() for c in chunks(images, 2)] == [[0, 1], [2, 3], [4, 4]]
    out = run_in_batches(lambda x: {"y": 2 * x}, images, 2)
    assert out["y"][:, 0, 0, 0].tolist() == [0, 2, 4, 6, 8]
    assert len(list(chunks(images, None))) == 1


# --- keep-float targets ------------------------------------------------------------------------

def test_targets_are_blocks_or_kinds():
    model = deploy_form(build_model("xs"))[0]
    assert check_targets(model, ["network.0.0", "gates", "network.0.0", " head "]) == ("network.0.0", "gates", "head")
    with pytest.raises(UsageError, match="--keep-float 'network.9.9': not a block or op kind"):
        check_targets(model, ["network.9.9"])


def test_target_coverage():
    gate_mul = NodeOrigin(("network.0", "network.0.0", "network.0.0.attn", "network.0.0.attn.oper_q",
                           "network.0.0.attn.oper_q.1"),
                          ("m.CASViT", "m.Sequential", "m.AdditiveBlock", "m.AdditiveTokenMixer", "m.Sequential",
                           "m.ChannelOperation"), "mul")
    residual = NodeOrigin(("network.0", "network.0.0"), ("m.CASViT", "m.Sequential", "m.AdditiveBlock"), "add")
    head = NodeOrigin(("head",), ("m.CASViT", "m.Linear"), "linear")
    assert covers("gates", gate_mul) and covers("channel-gates", gate_mul) and not covers("spatial-gates", gate_mul)
    assert covers("network.0.0", gate_mul) and not covers("network.0.1", gate_mul)
    assert covers("residual-adds", residual) and not covers("residual-adds", gate_mul)
    assert covers("head", head) and not covers("head", residual)
    assert keeps_float(["mlps", "head"])(head) and not keeps_float([])(head)


# --- agreement thresholds ----------------------------------------------------------------------

def test_int8_is_judged_by_agreement_not_by_tolerance():
    limits = defaults_for(Precision.INT8)
    assert not limits.judges_max_error and limits.min_snr_db is not None and limits.min_top5 is not None
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((16, 1000)).astype(np.float32) * 3
    close = ref + 0.05 * rng.standard_normal(ref.shape).astype(np.float32)  # ~35 dB: healthy int8
    assert metric_failures(compare("logits", close, ref), limits) == []
    assert metric_failures(compare("logits", close, ref), defaults_for(Precision.FP32))  # fails an fp32 tolerance
    broken = ref + 1.5 * rng.standard_normal(ref.shape).astype(np.float32)  # ~6 dB: a broken artifact
    failures = " ".join(metric_failures(compare("logits", broken, ref), limits))
    assert "cosine" in failures and "SNR" in failures and "top-1" in failures and "top-5" in failures
    judged = ThresholdOverrides(atol=0.01).apply(limits)  # asking for a tolerance judges it
    assert judged.judges_max_error and judged.rtol == 0.0
    assert any("max abs" in f for f in metric_failures(compare("logits", close, ref), judged))


def test_threshold_overrides_for_agreement():
    assert ThresholdOverrides(min_snr_db=-3.0).min_snr_db == -3.0  # an SNR may be negative
    with pytest.raises(UsageError, match="--min-top5"):
        ThresholdOverrides(min_top5=1.5)


# --- per-block error and the search ------------------------------------------------------------

def test_block_errors_show_where_the_error_enters():
    ref = {b: np.ones((1, 10)) for b in ("a", "b", "c")}
    out = {"a": ref["a"] * 1.001, "b": ref["b"] * 1.1, "c": ref["c"] * 1.1}  # the error enters at b
    errors = block_errors(out, ref, ["a", "b", "c"])
    assert [e.block for e in errors] == ["a", "b", "c"]
    assert errors[0].sqnr_db == pytest.approx(60.0) and errors[1].sqnr_db == pytest.approx(20.0)
    assert max(errors, key=lambda e: e.noise_added).block == "b"
    assert errors[2].noise_added == pytest.approx(0.0, abs=1e-12) and errors[1].previous_db == pytest.approx(60.0)


def _fake_evaluate(entering: dict[str, float]):
    """Block outputs whose error is `entering[block]` (noise-to-signal power, orthogonal to the
    signal) unless the block is kept float; the head carries the sum."""
    order = list(entering)

    def evaluate(kept):
        noise, outs, refs = 0.0, {}, {}
        for block in order + ["head"]:
            noise += 0.0 if block in kept or block == "head" else entering[block]
            refs[block], outs[block] = np.array([[1.0, 0.0]]), np.array([[1.0, math.sqrt(noise)]])
        return measure(tuple(kept), outs, refs, order + ["head"])

    return evaluate


def test_search_keeps_the_worst_blocks_until_the_target_is_reached():
    evaluate = _fake_evaluate({"a": 1e-5, "b": 4e-3, "c": 1e-4, "d": 2e-3})
    trials = search(evaluate, ("residual-adds",), ["a", "b", "c", "d"], Criterion(0.99999))
    assert [t.kept for t in trials] == [("residual-adds",), ("residual-adds", "b"), ("residual-adds", "b", "d"),
                                        ("residual-adds", "b", "d", "c")]
    assert trials[-1].reaches(0.99999) and not trials[-2].reaches(0.99999)
    assert next_block(Trial(("a", "b", "c", "d"), trials[0].agreement, trials[0].blocks), ["a", "b"]) is None


def test_search_stops_when_every_block_is_float():
    criterion = Criterion(1.0 + 1e-9)
    trials = search(_fake_evaluate({"a": 1e-2}), (), ["a"], criterion)
    assert [t.kept for t in trials] == [(), ("a",)]
    assert criterion.stopped_by(trials).startswith("no block left to keep float (cosine >= ")


def test_a_top1_budget_on_labelled_images_stops_the_search_where_cosine_would_not():
    """Labelled logits: 100 images, the fp32 model right on all; the int8 model wrong on as many
    as the blocks still int8 (and not kept float) make it: b costs 3 images, d 1, a and c none."""
    blocks = {"a": 1e-5, "b": 4e-3, "c": 1e-4, "d": 2e-3}
    wrong_per_block = {"a": 0, "b": 3, "c": 0, "d": 1}
    labels = np.arange(100) % 10
    evaluate = _fake_evaluate(blocks)

    def with_labels(kept):
        trial_outputs, wrong = {}, sum(n for b, n in wrong_per_block.items() if b not in kept)
        right = np.eye(10)[labels]
        trial_outputs[LABELLED] = np.where(np.arange(100)[:, None] < wrong, np.roll(right, 1, axis=1), right)
        trial = evaluate(kept)
        references = {LABELLED: right, "head": np.array([[1.0, 0.0]])}
        outputs = {LABELLED: trial_outputs[LABELLED], "head": np.array([[1.0, 0.0]])}
        labelled = measure(kept, outputs, references, ["head"], labels).labelled
        return Trial(trial.kept, trial.agreement, trial.blocks, labelled)

    by_cosine = search(with_labels, (), list(blocks), Criterion(0.99999))
    by_top1 = search(with_labels, (), list(blocks), Criterion(0.99999, max_top1_drop=1.0, floor=0.99))
    assert [t.kept for t in by_top1] == [(), ("b",)] and len(by_cosine) == 4
    assert by_top1[-1].labelled.drop.drop_pp == 1.0 and by_top1[0].labelled.drop.drop_pp == 4.0
    assert by_top1[-1].agreement.cosine < 0.99999  # cosine alone would have gone on
    assert Criterion(0.99999, 1.0, 0.99).stopped_by(by_top1) == "top-1 drop on labelled data"
    assert by_top1[-1].summary()["top1_drop_pp"] == 1.0 and by_top1[-1].summary()["labelled_fp32_top1"] == 1.0
    strict_floor = search(with_labels, (), list(blocks), Criterion(0.99999, max_top1_drop=1.0, floor=0.999999))
    assert len(strict_floor) > 2  # within budget, but not yet at the cosine floor


# --- options and manifest ----------------------------------------------------------------------

def test_int8_options_round_trip_and_checks():
    options = ExecuTorchOptions(int8=Int8Options(calibration_samples=8, calibration_method=CalibrationMethod.MINMAX,
                                                 keep_float=("gates", "head"), auto_keep_float=True, min_cosine=0.99))
    record = to_record(options)
    assert record["int8"]["keep_float"] == ["gates", "head"] and record["int8"]["calibration_method"] == "minmax"
    assert from_record(ExecuTorchOptions, record, "options") == options
    assert from_record(ExecuTorchOptions, to_record(ExecuTorchOptions()), "options") == ExecuTorchOptions()
    with pytest.raises(UsageError, match="--min-cosine"):
        Int8Options(min_cosine=1.5)
    with pytest.raises(UsageError, match="options.int8.min_cosine"):
        from_record(ExecuTorchOptions, {"int8": {"min_cosine": "high"}}, "options")


def test_manifest_quantization_record_round_trip():
    manifest = minimal_manifest()
    manifest.precision = Precision.INT8
    manifest.quantization = QuantizationRecord(
        "scheme", {"weights": "int8"}, CalibrationRecord("16 photographs", "a" * 64, 32, 16, "percentile"),
        [KeptFloat("residual-adds", "default")], {"cosine": 0.999, "top1": 1.0}, {"ratio": 1.1, "threads": 2})
    again = manifests.parse(manifest.to_dict())
    assert again.quantization == manifest.quantization
    data = manifest.to_dict()
    data["quantization"]["calibration"]["method"] = "guess"
    with pytest.raises(UsageError, match="quantization.calibration.method"):
        manifests.parse(data)
    assert manifests.parse(minimal_manifest().to_dict()).quantization is None


def test_every_block_name_is_a_target():
    model = build_model("xs")
    assert check_targets(model, block_names(model)) == tuple(block_names(model))
