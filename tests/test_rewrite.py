"""Every deploy-form pass is exact (float64, randomized BN statistics and weights), on the
classifier (with and without a distillation head) and on the four-output backbone."""

from __future__ import annotations

import pytest
import torch

from casvit_deploy.analysis import op_census
from casvit_deploy.model import VARIANTS, random_model
from casvit_deploy.rewrite import PASS_NAMES, PASSES, to_deploy

EXACT = 1e-10
DEPLOY_OPS = {"conv2d", "linear", "add", "mul", "sigmoid", "relu", "gelu", "mean"}


KINDS = {"one-head": {}, "distilled": {"distillation": True}, "backbone": {"fork_feat": True}}


@pytest.fixture(scope="module", params=list(KINDS))
def model64(request):
    return random_model("xs", seed=3, **KINDS[request.param]).double()


@pytest.fixture(scope="module")
def input64():
    return torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def max_diff(got, expected) -> float:
    """Largest absolute difference over the output, or over each of a backbone's outputs."""
    if isinstance(expected, torch.Tensor):
        return (got - expected).abs().max().item()
    assert [g.shape for g in got] == [e.shape for e in expected]
    return max((g - e).abs().max().item() for g, e in zip(got, expected))


@pytest.mark.parametrize("p", PASSES, ids=PASS_NAMES)
def test_each_pass_is_exact_in_float64(p, model64, input64):
    with torch.no_grad():
        expected = model64(input64)
        got = p.apply(model64)(input64)
    assert max_diff(got, expected) <= EXACT


@pytest.mark.parametrize("p", PASSES, ids=PASS_NAMES)
def test_each_pass_leaves_its_input_untouched(p, model64):
    before = {k: v.clone() for k, v in model64.state_dict().items()}
    structure = repr(model64)
    p.apply(model64)
    assert repr(model64) == structure
    after = model64.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("p", PASSES, ids=PASS_NAMES)
def test_each_pass_changes_something(p, model64):
    """A pass that rewrites nothing on the upstream model would be a silent no-op (merging
    heads has nothing to merge without a distillation head; a classifier has no output
    norms, a backbone no head)."""
    if model64.fork_feat:
        nothing_to_do = p.name in ("fold_head_norm", "merge_heads")
    else:
        nothing_to_do = p.name == "fold_output_norms" or (p.name == "merge_heads" and model64.dist_head is None)
    assert (repr(p.apply(model64)) == repr(model64)) is nothing_to_do


def test_whole_chain_exact_in_float64(model64, input64):
    deployed, applied = to_deploy(model64)
    assert applied == list(PASS_NAMES)
    with torch.no_grad():
        assert max_diff(deployed(input64), model64(input64)) <= EXACT


def test_deploy_form_uses_only_plain_ops(model64):
    deployed, _ = to_deploy(model64)
    census = op_census(deployed)
    assert set(census) <= DEPLOY_OPS, set(census) - DEPLOY_OPS
    assert census["linear"] == (0 if model64.fork_feat else 1)
    upstream = op_census(model64)
    assert {"batch_norm", "chunk", "adaptive_avg_pool2d", "dropout", "identity"} <= set(upstream)


def test_backbone_output_norms_become_one_scale_and_shift_each():
    """No linear op follows a backbone's output norms inside the model, so each becomes
    x * scale + shift with the BN's affine form; the stage's own path stays un-normed."""
    from casvit_deploy.rewrite.fusion import bn_affine
    from casvit_deploy.rewrite.modules import ChannelAffine

    model = random_model("xs", seed=8, fork_feat=True)
    deployed, _ = to_deploy(model)
    for index in model.out_indices:
        affine, bn = getattr(deployed, f"norm{index}"), getattr(model, f"norm{index}")
        assert isinstance(affine, ChannelAffine) and affine.scale.shape == (1, bn.num_features, 1, 1)
        scale, shift = bn_affine(bn)
        assert torch.equal(affine.scale.flatten(), scale) and torch.equal(affine.shift.flatten(), shift)
    assert op_census(deployed)["batch_norm"] == 0 and op_census(model)["batch_norm"] > 4


@pytest.mark.parametrize("variant, kind",
                         [(v, "distilled") if v in ("xs", "t") else pytest.param(v, "distilled", marks=pytest.mark.slow)
                          for v in VARIANTS] + [("xs", "backbone"), ("t", "backbone")])  # S, M: slow suite
def test_whole_chain_float32_every_variant(variant, kind):
    model = random_model(variant, seed=5, **KINDS[kind])
    x = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(2))
    deployed, _ = to_deploy(model)
    with torch.no_grad():
        expected, got = model(x), deployed(x)
    if kind == "backbone":
        assert [e.shape[-2:] for e in expected] == [(24, 32), (12, 16), (6, 8), (3, 4)]
        for e, g in zip(expected, got):
            assert (g - e).abs().max().item() <= 1e-4 * max(e.abs().max().item(), 1.0)
        return
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= 1e-4 * max(scale, 1.0)
    assert torch.equal(got.argmax(1), expected.argmax(1))


def test_disabling_a_pass_keeps_that_part_upstream(model64, input64):
    deployed, applied = to_deploy(model64, disable=["split_qkv", "fold_head_norm", "fold_output_norms"])
    assert not {"split_qkv", "fold_head_norm", "fold_output_norms"} & set(applied)
    census = op_census(deployed)
    assert census["chunk"] == sum(model64.variant.layers)
    assert census["batch_norm"] == (4 if model64.fork_feat else 1)
    with torch.no_grad():
        assert max_diff(deployed(input64), model64(input64)) <= EXACT


def test_unknown_pass_name_is_refused(model64):
    from casvit_deploy.errors import UsageError

    with pytest.raises(UsageError, match="unknown pass"):
        to_deploy(model64, disable=["fold_everything"])


def test_training_mode_is_refused():
    from casvit_deploy.errors import UsageError

    with pytest.raises(UsageError, match="eval-mode"):
        to_deploy(random_model("xs").train())


def test_rewrite_keeps_device_and_dtype():
    """Fused modules are created where the model lives (a CUDA model stays on CUDA)."""
    model = random_model("xs").to(device="meta", dtype=torch.float16)
    deployed, _ = to_deploy(model)
    tensors = list(deployed.parameters()) + list(deployed.buffers())
    assert {(t.device.type, t.dtype) for t in tensors} == {("meta", torch.float16)}
