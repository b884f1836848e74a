"""The model equals the reference forward, has the reference names, and runs at any size /32."""

from __future__ import annotations

import pytest
import torch

from casvit_deploy.analysis import count_params, macs_per_stage
from casvit_deploy.model import VARIANTS, build_model, random_model
from tests.reference_forward import reference_forward


def _input(size, batch=2, seed=0, dtype=torch.float64):
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("distillation", [False, True], ids=["one-head", "distilled"])
def test_matches_reference_transcription(variant, distillation):
    model = random_model(variant, seed=11, distillation=distillation).double()
    x = _input((64, 96))
    with torch.no_grad():
        got = model(x)
        expected = reference_forward(model.state_dict(), model.variant.layers, x)
    assert got.shape == (2, 1000)
    assert (got - expected).abs().max().item() <= 1e-10


def test_fork_feat_matches_reference_and_strides():
    model = random_model("xs", seed=2, fork_feat=True).double()
    x = _input((128, 160))
    with torch.no_grad():
        feats = model(x)
        expected = reference_forward(model.state_dict(), model.variant.layers, x, fork_feat=True)
    assert [f.shape[1:] for f in feats] == [(48, 32, 40), (56, 16, 20), (112, 8, 10), (220, 4, 5)]
    for got, ref in zip(feats, expected):
        assert (got - ref).abs().max().item() <= 1e-10


def test_pinned_output_of_seeded_model():
    """Pins the float64 logits of a seeded model so that any change of arithmetic shows up."""
    model = random_model("xs", seed=0).double()
    x = _input((64, 64), batch=1, seed=123)
    with torch.no_grad():
        logits = model(x)[0]
    expected = reference_forward(model.state_dict(), model.variant.layers, x)[0]
    assert torch.allclose(logits, expected, atol=1e-12, rtol=0)
    assert logits.std().item() > 0.5  # not a degenerate all-equal output


@pytest.mark.parametrize("size", [224, 256, 384])
def test_runs_at_multiples_of_32(size):
    model = build_model("xs")
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 1000)


def test_reference_parameter_names():
    keys = build_model("xs", distillation=True).state_dict().keys()
    for key in ("patch_embed.0.weight", "patch_embed.4.running_mean", "network.0.0.attn.qkv.weight",
                "network.0.0.attn.oper_q.0.block.0.weight", "network.0.0.attn.oper_k.1.block.1.weight",
                "network.0.0.local_perception.network.4.bias", "network.0.0.mlp.fc2.weight",
                "network.1.proj.weight", "network.1.norm.running_var", "norm.weight", "head.weight",
                "dist_head.bias"):
        assert key in keys
    assert "network.0.0.attn.qkv.bias" not in keys


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_parameter_count_and_macs_match_paper(variant):
    """The paper counts parameters with the distillation head (the reference default)."""
    spec = VARIANTS[variant]
    params = count_params(build_model(variant, distillation=True)) / 1e6
    assert params == pytest.approx(spec.params_m, abs=0.006)
    gmacs = sum(macs_per_stage(build_model(variant), 224).values()) / 1e9
    assert gmacs == pytest.approx(spec.gmacs_224, rel=0.03)


def test_model_store_manifest_matches_variant_table():
    import json
    from pathlib import Path

    store = json.loads((Path(__file__).parents[1] / "models" / "variants.json").read_text())["variants"]
    assert set(store) == set(VARIANTS)
    for name, spec in VARIANTS.items():
        entry = store[name]
        assert (tuple(entry["layers"]), tuple(entry["dims"])) == (spec.layers, spec.dims)
        assert (entry["params_m"], entry["gmacs_224"], entry["top1_paper"]) == (spec.params_m, spec.gmacs_224,
                                                                               spec.top1_paper)
