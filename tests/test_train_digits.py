"""benchmarks/train_digits.py: the committed digits checkpoint, its held-out split and its training code."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from casvit_deploy.model import load_model

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "train_digits.py"
RECORDED = json.loads((ROOT / "benchmarks" / "train_digits.json").read_text())
CHECKPOINT = ROOT / "models" / RECORDED["checkpoint"]


def _script():
    spec = importlib.util.spec_from_file_location("train_digits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_digits = _script()


@pytest.fixture(autouse=True)
def one_thread():
    """One thread, as the recipe trains (two are several times slower on a busy 2-core machine);
    training also turns on deterministic kernels for the whole process: both are put back."""
    state = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    if torch.are_deterministic_algorithms_enabled() != state[0]:  # the first call costs seconds
        torch.use_deterministic_algorithms(state[0])
    torch.set_num_threads(state[1])


def test_committed_checkpoint_scores_the_recorded_top1_on_the_regenerated_split(tmp_path):
    recipe = RECORDED["recipe"]
    images, labels = train_digits.digit_images(recipe["resolution"])
    train, heldout = train_digits.split_indices(labels, recipe["heldout_fraction"], recipe["seed"])
    assert train_digits.write_split(tmp_path, images, labels, heldout) == RECORDED["split"]["heldout"]
    with pytest.raises(SystemExit, match="images of another split"):
        train_digits.write_split(tmp_path, images, labels, train[:1])

    x, _ = train_digits.read_split(tmp_path, recipe["resolution"])
    in_folder_order = heldout[labels[heldout].argsort(kind="stable")]
    assert torch.equal(x, train_digits.model_inputs(images[in_folder_order], recipe["resolution"]))

    loaded = load_model(CHECKPOINT)
    assert loaded.checkpoint.sha256 == RECORDED["checkpoint_sha256"]
    assert (loaded.variant, loaded.num_classes, loaded.native_resolution.height) == ("xs", 10, 32)
    assert train_digits.evaluate_checkpoint(CHECKPOINT, tmp_path) == pytest.approx(RECORDED["heldout_top1"], abs=1e-9)


def test_training_steps_are_deterministic_and_save_a_checkpoint_casvit_reads(tmp_path):
    images, labels = train_digits.digit_images(32)
    x, y = train_digits.model_inputs(images[:16], 32), torch.from_numpy(labels[:16])
    recipe = train_digits.RECIPE | {"batch_size": 8, "epochs": 1}
    first = train_digits.train(x, y, recipe, max_steps=2, log=lambda _: None)
    second = train_digits.train(x, y, recipe, max_steps=2, log=lambda _: None)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name

    path = tmp_path / "digits.pth"
    train_digits.save_checkpoint(first, path, recipe)
    loaded = load_model(path)
    assert (loaded.variant, loaded.num_classes, loaded.checkpoint.input_size) == ("xs", 10, 32)
    assert torch.isfinite(loaded.model(x[:4])).all()


@pytest.mark.slow
def test_full_training_reproduces_the_recorded_top1(tmp_path):
    out = tmp_path / "summary.json"
    train_digits.main(["--checkpoint", str(tmp_path / "digits.pth"), "--split-dir", str(tmp_path / "split"),
                       "--summary", str(out)])
    result = json.loads(out.read_text())
    assert result["heldout_top1"] >= 0.97
    assert abs(result["heldout_top1"] - RECORDED["heldout_top1"]) <= 0.01
