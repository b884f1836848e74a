"""A top-1 budget on labelled data for CoreML's lossy choices: `--fp16-safe --data DIR
--max-top1-drop PP` chooses the blocks kept in fp32 with the whole model's fp16 emulation,
and `--palettize auto` the fewest bits that pass (with `--data`, within the budget). The
trained digits checkpoint and its held-out split are the labelled data; a crafted copy
(network.4.1's MLP shifted by +20000 before GELU and back after it: fp16's spacing there
is 16, so the block loses its signal in fp16) gives a block whose fp16 costs top-1."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from casvit_deploy.cli import app
from casvit_deploy.export.base import LoadCheck
from casvit_deploy.export.labelled import LabelledImages
from casvit_deploy.formats.coreml import palette_choice
from casvit_deploy.formats.coreml.fp16_check import run_mixed_fp16
from casvit_deploy.formats.coreml.palette_choice import candidates, choose_palette
from casvit_deploy.model import load_model
from casvit_deploy.store import manifests

pytest.importorskip("coremltools")

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "casvit_xs_digits.pth"
CRAFTED_BLOCK = "network.4.1"
SHIFT = 20000.0
PER_CLASS = 8  # labelled images per digit in the fast tests


def invoke(*args):
    return CliRunner().invoke(app, [*map(str, args)], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def digits_subset(tmp_path_factory) -> Path:
    """PER_CLASS held-out digits of each class, as train_digits.py writes the split."""
    spec = importlib.util.spec_from_file_location("train_digits", ROOT / "benchmarks" / "train_digits.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    split = tmp_path_factory.mktemp("digits") / "heldout"
    assert script.main(["--split-only", "--split-dir", str(split)]) == 0
    subset = tmp_path_factory.mktemp("digits") / "subset"
    for folder in sorted(split.iterdir()):
        (subset / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:PER_CLASS]:
            shutil.copy(image, subset / folder.name / image.name)
    return subset


@pytest.fixture(scope="module")
def crafted_checkpoint(tmp_path_factory) -> Path:
    """The digits model with CRAFTED_BLOCK's MLP computing fc2(GELU(fc1 x + SHIFT)) - fc2(SHIFT)."""
    model = load_model(DIGITS).model
    with torch.no_grad():
        mlp = model.get_submodule(CRAFTED_BLOCK).mlp
        mlp.fc1.bias += SHIFT
        mlp.fc2.bias -= SHIFT * mlp.fc2.weight.sum(dim=(1, 2, 3))
    path = tmp_path_factory.mktemp("crafted") / "casvit_xs_digits_shifted.pth"
    torch.save(model.state_dict(), path)
    return path


def _fp16(t: torch.Tensor) -> torch.Tensor:
    return t.half().float()


def test_mixed_fp16_rounds_outside_the_fp32_blocks_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4)).eval()
    x = torch.randn(5, 8) * 3
    with torch.no_grad():
        both = run_mixed_fp16(model, x.numpy(), ("0", "1"))
        assert np.array_equal(both, model(_fp16(x)).numpy())  # fp32 blocks fed an fp16 input
        first, second = model
        emulated = _fp16(nn.functional.linear(_fp16(x), _fp16(first.weight), _fp16(first.bias)))
        assert np.array_equal(run_mixed_fp16(model, x.numpy(), ("1",)), second(emulated).numpy())
        assert not np.array_equal(run_mixed_fp16(model, x.numpy()), both)


def test_palette_candidates_follow_the_deployment_target():
    assert candidates("iOS16") == [6, 8] and candidates("iOS17") == [6, 8]
    assert candidates("iOS18") == [4, 6, 8] and candidates("macOS15") == [4, 6, 8]


class _Package:
    def save(self, path: str) -> None:
        Path(path).mkdir()


def test_palette_choice_keeps_8_bits_for_the_gate_when_none_passes(tmp_path, monkeypatch):
    compressed = []
    monkeypatch.setattr(palette_choice, "compress", lambda m, c, *a: compressed.append(c.palettize_bits) or _Package())
    failing = LoadCheck(True, "fake", ["logits: cosine 0.9 < 0.98"], agreement={"cosine": 0.9})
    job = SimpleNamespace(model=None, artifact=tmp_path / "a.mlpackage", options=SimpleNamespace(
        deployment_target="iOS18"), batch=1, progress=lambda text: None, check=lambda *a, **k: failing)
    choice = choose_palette(job, _Package(), None, None, np.zeros((1, 3, 32, 32), np.float32), None, None)
    assert compressed == [4, 6, 8] and choice.bits == 8 and choice.chosen_by.startswith("no candidate left")
    assert [t["bits"] for t in choice.record()["search"]] == [4, 6, 8]
    assert list(tmp_path.iterdir()) == []  # the trial packages are gone


def test_palette_choice_goes_on_until_the_labelled_drop_is_within_the_budget(tmp_path, monkeypatch):
    labels = np.arange(10) % 2
    right = np.eye(2)[labels]
    monkeypatch.setattr(palette_choice, "compress", lambda m, c, *a: SimpleNamespace(
        bits=c.palettize_bits, save=lambda path: Path(path).mkdir()))
    monkeypatch.setattr(palette_choice, "scores", lambda run, images: right)  # fp32: 10 of 10
    wrong_at_4 = {"4bit": np.eye(2)[1 - labels[:1]].tolist() + right[1:].tolist()}  # 4 bits: 9 of 10
    monkeypatch.setattr(palette_choice, "package_scores", lambda path, *a: np.asarray(
        wrong_at_4.get(Path(path).stem, right), float))
    monkeypatch.setattr(palette_choice, "EagerRunner", lambda model: SimpleNamespace(run=None))
    passing = LoadCheck(True, "fake", [], agreement={"cosine": 0.99})
    job = SimpleNamespace(model=None, artifact=tmp_path / "a.mlpackage", options=SimpleNamespace(
        deployment_target="iOS18"), batch=1, preprocessing=None, progress=lambda text: None,
        check=lambda *a, **k: passing)
    labelled = LabelledImages(np.zeros((10, 3, 1, 1)), labels, {"files": 10})
    choice = choose_palette(job, None, None, None, np.zeros((1, 3, 32, 32), np.float32), labelled, 5.0)
    assert [t.bits for t in choice.trials] == [4, 6] and choice.bits == 6 and choice.mlmodel.bits == 6
    assert [round(t.labelled.drop.drop_pp) for t in choice.trials] == [10, 0]
    assert choice.chosen_by == "top-1 drop on labelled data and agreement"


def test_labelled_images_judge_top1_against_fp32():
    labelled = LabelledImages(np.zeros((4, 3, 1, 1)), np.array([0, 1, 1, 0]), {})
    reference = np.array([[1, 0], [0, 1], [0, 1], [0, 1]], float)  # 3 of 4 right
    result = labelled.judge(np.array([[1, 0], [1, 0], [0, 1], [1, 0]], float), reference)  # 3 of 4 right
    assert result.top1 == 0.75 and result.reference_top1 == 0.75 and result.drop.drop_pp == 0.0


def _details(folder: Path) -> dict:
    (package,) = folder.glob("*.mlpackage")
    return manifests.load(package).details.to_dict()


def test_fp16_safe_with_a_budget_keeps_the_block_that_costs_top1(crafted_checkpoint, digits_subset, tmp_path):
    out = tmp_path / "out"
    result = invoke("export", "-f", "coreml", "--fp16-safe", "--data", digits_subset, "--max-top1-drop", 1,
                    "-c", crafted_checkpoint, "-r", 32, "-o", out)
    assert result.exit_code == 0, result.output
    safe = _details(out)["fp16_safe"]
    assert list(safe["kept_fp32"]) == [CRAFTED_BLOCK] and "--max-top1-drop" in safe["kept_fp32"][CRAFTED_BLOCK]
    first, last = safe["search"]
    assert first["kept"] == [] and first["top1_drop_pp"] > 1 and first["gate_failures"]
    assert last["kept"] == [CRAFTED_BLOCK] and last["top1_drop_pp"] <= 1 and last["gate_failures"] == []
    assert safe["chosen_by"] == "top-1 drop on labelled data" and safe["labelled_data"]["files"] == 10 * PER_CLASS
    assert safe["package"]["top1_drop_pp"] <= 1  # measured on the package itself, by the MIL interpreter
    info = invoke("info", next(out.glob("*.mlpackage")))
    assert f"--fp16-safe: blocks in fp32: {CRAFTED_BLOCK}; chosen by top-1 drop on labelled data" in info.output


@pytest.mark.slow  # 6-bit k-means and the MIL interpreter; fast sibling: the two choose_palette tests above
def test_palettize_auto_chooses_the_fewest_bits_within_the_budget(digits_subset, tmp_path):
    out = tmp_path / "out"
    result = invoke("export", "-f", "coreml", "--palettize", "auto", "--data", digits_subset, "--max-top1-drop", 0.5,
                    "-c", DIGITS, "-r", 32, "-o", out, "--json", "-")
    assert result.exit_code == 0, result.output
    assert "palettized-auto_top1drop0.5-subset" in json.loads(result.stdout)["results"][0]["file"]
    compression = _details(out)["compression"]
    choice = compression["choice"]
    assert compression["flag"] == "--palettize 6" and choice["bits"] == 6  # iOS16: 6 bits is the fewest offered
    (trial,) = choice["search"]
    assert trial["top1_drop_pp"] <= 0.5 and trial["load_check_failures"] == []
    assert choice["chosen_by"] == "top-1 drop on labelled data and agreement"
    info = invoke("info", next(out.glob("*.mlpackage")))
    assert "--palettize auto: 6 bits, chosen by top-1 drop on labelled data and agreement after 1 trial(s)" in info.output


@pytest.mark.parametrize("args, message", [
    (("--data", "{data}", "--max-top1-drop", "1"), "set the top-1 budget of --fp16-safe or --palettize auto"),
    (("--fp16-safe", "--data", "{data}"), "--data and --max-top1-drop go together"),
    (("--palettize", "seven"), "--palettize seven: choose 8, 6, 4 bits or auto"),
    (("--palettize", "auto", "-p", "int8"), "does not combine with --precision int8"),
    (("--fp16-safe", "--data", "{data}/missing", "--max-top1-drop", "1"), "no such folder or file"),
    (("--backbone", "--fp16-safe", "--data", "{data}", "--max-top1-drop", "1"), "for classifiers only"),
    (("-f", "onnx", "--data", "{data}", "--max-top1-drop", "1"), "or to CoreML's --fp16-safe and --palettize auto"),
])
def test_bad_budget_requests_exit_2_with_one_line(args, message, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    formats = () if "-f" in args else ("-f", "coreml")
    result = invoke("export", *formats, "-r", 32, "-o", tmp_path / "out", *(a.format(data=data) for a in args))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
