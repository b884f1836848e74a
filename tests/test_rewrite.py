"""Every deploy-form pass is exact (float64, randomized BN statistics and weights)."""

from __future__ import annotations

import pytest
import torch

from casvit_deploy.analysis import op_census
from casvit_deploy.model import VARIANTS, random_model
from casvit_deploy.rewrite import PASS_NAMES, PASSES, to_deploy

EXACT = 1e-10
DEPLOY_OPS = {"conv2d", "linear", "add", "mul", "sigmoid", "relu", "gelu", "mean"}


@pytest.fixture(scope="module", params=[False, True], ids=["one-head", "distilled"])
def model64(request):
    return random_model("xs", seed=3, distillation=request.param).double()


@pytest.fixture(scope="module")
def input64():
    return torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.mark.parametrize("p", PASSES, ids=PASS_NAMES)
def test_each_pass_is_exact_in_float64(p, model64, input64):
    with torch.no_grad():
        expected = model64(input64)
        got = p.apply(model64)(input64)
    assert (got - expected).abs().max().item() <= EXACT


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
    """A pass that rewrites nothing on the upstream model would be a silent no-op
    (merging heads has nothing to merge without a distillation head)."""
    nothing_to_do = p.name == "merge_heads" and model64.dist_head is None
    assert (repr(p.apply(model64)) == repr(model64)) is nothing_to_do


def test_whole_chain_exact_in_float64(model64, input64):
    deployed, applied = to_deploy(model64)
    assert applied == list(PASS_NAMES)
    with torch.no_grad():
        assert (deployed(input64) - model64(input64)).abs().max().item() <= EXACT


def test_deploy_form_uses_only_plain_ops(model64):
    deployed, _ = to_deploy(model64)
    census = op_census(deployed)
    assert set(census) <= DEPLOY_OPS, set(census) - DEPLOY_OPS
    assert census["linear"] == 1
    upstream = op_census(model64)
    assert {"batch_norm", "chunk", "adaptive_avg_pool2d", "dropout", "identity"} <= set(upstream)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_whole_chain_float32_every_variant(variant):
    model = random_model(variant, seed=5, distillation=True)
    x = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(2))
    deployed, _ = to_deploy(model)
    with torch.no_grad():
        expected, got = model(x), deployed(x)
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= 1e-4 * max(scale, 1.0)
    assert torch.equal(got.argmax(1), expected.argmax(1))


def test_disabling_a_pass_keeps_that_part_upstream(model64, input64):
    deployed, applied = to_deploy(model64, disable=["split_qkv", "fold_head_norm"])
    assert "split_qkv" not in applied and "fold_head_norm" not in applied
    census = op_census(deployed)
    assert census["chunk"] == sum(model64.variant.layers)
    assert census["batch_norm"] == 1
    with torch.no_grad():
        assert (deployed(input64) - model64(input64)).abs().max().item() <= EXACT


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
