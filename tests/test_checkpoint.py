"""Checkpoint loading: every accepted layout, and a one-line refusal for everything else."""

from __future__ import annotations

import os
import pickle
import zipfile

import pytest
import torch

from casvit_deploy.errors import CheckpointError
from casvit_deploy.model import load_checkpoint, random_model


def _save(tmp_path, obj, name="ckpt.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def _same_weights(model, state_dict):
    return all(torch.equal(v, state_dict[k]) for k, v in model.state_dict().items())


def test_official_training_checkpoint(xs_checkpoint):
    model, info = load_checkpoint(xs_checkpoint)
    raw = torch.load(xs_checkpoint, weights_only=False)
    assert _same_weights(model, raw["model"])
    assert (info.variant, info.num_classes, info.distillation, info.fork_feat) == ("xs", 1000, False, False)
    assert info.has_ema and not info.used_ema
    assert info.epoch == 299 and info.input_size == 224
    assert len(info.sha256) == 64


def test_ema_weights_on_request(xs_checkpoint):
    model, info = load_checkpoint(xs_checkpoint, ema=True)
    assert info.used_ema
    assert _same_weights(model, torch.load(xs_checkpoint, weights_only=False)["model_ema"])


def test_ema_requested_but_absent(checkpoint_factory):
    with pytest.raises(CheckpointError, match="no EMA weights"):
        load_checkpoint(checkpoint_factory("xs", ema=False), ema=True)


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "module.", "_orig_mod.", "module._orig_mod."])
def test_other_layouts(tmp_path, wrap):
    sd = random_model("s", seed=4).state_dict()
    if wrap == "bare":
        obj = sd
    elif wrap == "state_dict":
        obj = {"state_dict": sd, "meta": {"epoch": 3}}
    else:
        obj = {"model": {wrap + k: v for k, v in sd.items()}}
    model, info = load_checkpoint(_save(tmp_path, obj))
    assert info.variant == "s" and _same_weights(model, sd)


def test_distillation_and_classes_inferred(checkpoint_factory):
    model, info = load_checkpoint(checkpoint_factory("m", distillation=True, num_classes=10))
    assert (info.variant, info.num_classes, info.distillation) == ("m", 10, True)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_safetensors(tmp_path):
    from safetensors.torch import save_file

    sd = random_model("xs", seed=9).state_dict()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    model, info = load_checkpoint(path)
    assert info.variant == "xs" and _same_weights(model, sd)


@pytest.mark.parametrize("wrapper", ["", "module."])
def test_detection_backbone_checkpoint_in_the_mmdet_layout(tmp_path, wrapper):
    """`state_dict` with `backbone.` keys (also under a DDP `module.`): the backbone loads
    exactly; neck and head keys are ignored, counted, and said so in one note."""
    from tests.conftest import DETECTOR_EXTRA_KEYS, mmdet_checkpoint

    backbone = random_model("xs", seed=1, fork_feat=True)
    model, info = load_checkpoint(_save(tmp_path, mmdet_checkpoint(backbone, wrapper)))
    assert info.fork_feat and info.num_classes == 0 and info.variant == "xs" and info.epoch == 12
    assert _same_weights(model, backbone.state_dict())
    assert info.ignored_keys == {"neck": 3, "rpn_head": 2, "roi_head": 2}
    assert sum(info.ignored_keys.values()) == len(DETECTOR_EXTRA_KEYS)
    assert info.notes == [f"ckpt.pth: loaded the backbone, ignored {len(DETECTOR_EXTRA_KEYS)} keys outside "
                          "'backbone.': neck (3), rpn_head (2), roi_head (2)"]
    feats = model(torch.randn(1, 3, 64, 96))
    assert [f.shape[1:] for f in feats] == [(48, 16, 24), (56, 8, 12), (112, 4, 6), (220, 2, 3)]


def test_classifier_checkpoint_has_no_notes(xs_checkpoint):
    assert load_checkpoint(xs_checkpoint)[1].notes == []


def test_backbone_flag_with_a_classifier_checkpoint_is_refused(xs_checkpoint, xs_backbone_checkpoint):
    from casvit_deploy.errors import UsageError
    from casvit_deploy.model import load_model

    with pytest.raises(UsageError, match="holds a classifier.*drop --backbone"):
        load_model(xs_checkpoint, backbone=True)
    assert load_model(xs_backbone_checkpoint, backbone=True).is_backbone
    assert load_model(xs_backbone_checkpoint).is_backbone and not load_model(xs_checkpoint).is_backbone


def test_variant_mismatch_names_the_fitting_variant(xs_checkpoint):
    with pytest.raises(CheckpointError, match="holds CAS-ViT-XS, not T: pass --variant xs"):
        load_checkpoint(xs_checkpoint, variant="t")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = _save(tmp_path, {"model": random_model("xs").state_dict(), "x": _RunsCode(marker)})
    with pytest.raises(CheckpointError, match="refused .*(system|posix)"):
        load_checkpoint(path)
    assert not marker.exists()


def test_legacy_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "legacy.pth"
    path.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def _truncated(tmp_path, xs_checkpoint):
    data = xs_checkpoint.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    return path


def _flipped(tmp_path, xs_checkpoint):
    path = tmp_path / "garbage.pth"
    path.write_bytes(os.urandom(4096))
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d, c: (d / "missing.pth"), "does not exist"),
    (lambda d, c: (d / "empty.pth").write_bytes(b"") and None or d / "empty.pth", "is empty"),
    (_truncated, "truncated or corrupt"),
    (_flipped, "truncated or corrupt"),
    (lambda d, c: (d / "x.onnx").write_bytes(b"\x08\x07\x12\x07pytorch") and None or d / "x.onnx", "ONNX model"),
    (lambda d, c: (d / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64) and None or d / "x.png", "an image"),
    (lambda d, c: d, "is a folder"),
])
def test_bad_files_get_one_line_errors(tmp_path, xs_checkpoint, make, message):
    path = make(tmp_path, xs_checkpoint)
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


def test_zip_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "archive.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_missing_unexpected_and_misshapen_keys(tmp_path):
    sd = random_model("xs").state_dict()
    missing = {k: v for k, v in sd.items() if k != "network.0.0.mlp.fc1.weight"}
    with pytest.raises(CheckpointError, match="1 missing \\(e.g. network.0.0.mlp.fc1.weight\\)"):
        load_checkpoint(_save(tmp_path, missing, "a.pth"))
    extra = dict(sd, **{"network.0.0.extra.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="1 unexpected"):
        load_checkpoint(_save(tmp_path, extra, "b.pth"))
    bad = dict(sd, **{"network.0.0.mlp.fc1.weight": torch.zeros(192, 48, 3, 3)})
    with pytest.raises(CheckpointError, match="has shape"):
        load_checkpoint(_save(tmp_path, bad, "c.pth"))


def test_not_casvit_at_all(tmp_path):
    with pytest.raises(CheckpointError, match="not a CAS-ViT checkpoint"):
        load_checkpoint(_save(tmp_path, {"fc.weight": torch.zeros(2, 2)}))


def test_architecture_matching_no_variant(tmp_path):
    sd = random_model("xs").state_dict()
    sd = {k: v for k, v in sd.items() if not k.startswith("network.0.1.")}
    with pytest.raises(CheckpointError, match="match no CAS-ViT variant"):
        load_checkpoint(_save(tmp_path, sd))


@pytest.mark.parametrize("key, value, dtype, refused", [
    ("norm.running_var", -5.0, torch.float32, "norm.running_var holds a negative variance"),
    ("norm.running_var", -1e-30, torch.float32, "negative variance"),
    ("norm.running_var", 0.0, torch.float32, None),  # a dead channel: eps keeps BN finite
    ("norm.running_mean", -5.0, torch.float32, None),  # a mean may be negative
    ("head.weight", 3e38, torch.float32, "head.weight holds a value of magnitude 3e\\+38"),
    ("head.weight", -1.5e10, torch.float32, "magnitude 1.5e\\+10"),
    ("head.weight", 1e300, torch.float64, "magnitude 1e\\+300"),  # finite in float64, inf in float32
    ("head.weight", 1e10, torch.float32, None),  # the bound itself
    ("head.weight", 6e4, torch.float16, None),  # near fp16's max: the fp16 pre-check's business
])
def test_values_no_training_produces_are_refused_at_load(tmp_path, key, value, dtype, refused):
    from casvit_deploy.model.checkpoint import MAX_MAGNITUDE

    sd = random_model("xs").state_dict()
    sd[key] = sd[key].to(dtype)
    sd[key].view(-1)[1] = value
    path = _save(tmp_path, sd)
    if refused is None:
        assert abs(value) <= MAX_MAGNITUDE and load_checkpoint(path)[1].variant == "xs"
        return
    with pytest.raises(CheckpointError, match=refused) as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
