"""`casvit eval`: top-1 as each runtime computes it, the gate, the record in the manifest and in
`casvit info`, the labelled-set reader's refusals, and the statistics behind the drop."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from casvit_deploy.artifacts.files import artifact_sha256, artifact_size
from casvit_deploy.cli import app
from casvit_deploy.data.images import preprocess
from casvit_deploy.data.labelled import read_labelled
from casvit_deploy.errors import UsageError
from casvit_deploy.numerics.accuracy import paired_drop, top_classes, wilson, worst_classes
from casvit_deploy.store import manifests
from tests.parity_helpers import copy_artifact, perturb_float, reference_weight

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "casvit_xs_digits.pth"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def invoke(*args):
    return CliRunner().invoke(app, [*map(str, args)], env={"COLUMNS": "200"})


def one_line_error(result, code: int = 2) -> str:
    lines = [line for line in result.stderr.splitlines() if not line.startswith("[")]  # progress lines
    assert result.exit_code == code and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture(scope="module")
def digits_split(tmp_path_factory) -> Path:
    """The digits checkpoint's held-out split (359 PNGs in folders 0..9), as train_digits.py writes it."""
    folder = tmp_path_factory.mktemp("digits") / "heldout"
    assert _script("train_digits").main(["--split-only", "--split-dir", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory) -> Path:
    """The digits checkpoint exported to ONNX fp32 at its native 32x32 (its parity gate passed)."""
    from casvit_deploy.model import load_model
    from casvit_deploy.pipeline import export_model
    from casvit_deploy.pipeline.gate import parity_gate

    loaded = load_model(DIGITS)
    result = export_model(loaded, "onnx", tmp_path_factory.mktemp("digits_onnx"), resolution=32,
                          gate=parity_gate(loaded))
    assert result.gate.status.value == "pass"
    return result.artifact


# --- the top-1 each runtime gives --------------------------------------------------------------

def _image_folder(folder: Path, manifest, count: int = 12) -> tuple[list[Path], np.ndarray]:
    """`count` seeded 40x40 RGB PNGs in class-index folders: half labelled with the class the eager
    model predicts, half with the next class, so top-1 is neither 0 nor 1."""
    from casvit_deploy.model import load_model

    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (count, 40, 40, 3), dtype=np.uint8)
    x = np.stack([preprocess(p, manifest.preprocessing) for p in pixels])
    import torch

    predicted = load_model(None, "xs").model(torch.from_numpy(x)).argmax(1).numpy()
    labels = np.where(np.arange(count) % 2 == 0, predicted, (predicted + 1) % manifest.num_classes)
    paths = []
    for i, (image, label) in enumerate(zip(pixels, labels)):
        path = folder / str(label) / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths, labels


def _direct_top1(artifact: Path, paths: list[Path], labels: np.ndarray) -> float:
    """Top-1 computed without casvit eval: each PNG decoded by Pillow, preprocessed as the
    manifest records, run one at a time (onnxruntime itself for .onnx, the format's runner otherwise)."""
    manifest = manifests.load(artifact)
    images = [preprocess(np.asarray(Image.open(p).convert("RGB")), manifest.preprocessing)[None] for p in paths]
    if artifact.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
        scores = [session.run(None, {"image": x})[0] for x in images]
    else:
        from casvit_deploy.store.runners import open_runner

        with open_runner(artifact) as runner:
            scores = [runner.run(x)[manifest.output_names[0]] for x in images]
    return float(np.mean(np.concatenate(scores).argmax(1) == labels))


@pytest.mark.parametrize("fmt", ["onnx", "ort", "coreml", "executorch"])
def test_reported_top1_is_what_each_runtime_gives(fmt, small_artifact, tmp_path):
    artifact = copy_artifact(small_artifact(fmt), tmp_path / "artifact")
    paths, labels = _image_folder(tmp_path / "data", manifests.load(artifact))
    shown = invoke("eval", artifact, "--data", tmp_path / "data", "--threads", "1", "--json", "-")
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    eager, found = report["results"]
    expected = _direct_top1(artifact, paths, labels)
    assert 0 < expected < 1 and found["top1"] == expected and found["correct"] == round(expected * len(paths))
    assert eager["kind"] == "eager" and eager["top1"] == 0.5  # the labels were made from its predictions
    assert report["dataset"]["files"] == len(paths) and found["format"] == fmt
    recorded = manifests.load(artifact).latest_evaluation
    assert recorded.top1 == expected and recorded.sha256 == artifact_sha256(artifact)
    assert recorded.dataset.sha256 == report["dataset"]["sha256"] and recorded.passed is None


# --- the gate, the record, info -----------------------------------------------------------------

def _damaged(good: Path, folder: Path, label: int, delta: float) -> Path:
    """A copy of the digits ONNX file whose head bias for `label` is lowered by `delta`, its
    manifest updated to the new bytes (a valid artifact that is simply worse)."""
    from casvit_deploy.model import load_model

    bad = copy_artifact(good, folder)
    bias = reference_weight(load_model(DIGITS), bad, "head.bias")
    perturb_float(bad, bias, label, -delta)
    manifest = manifests.load(bad)
    manifests.save(replace(manifest, sha256=artifact_sha256(bad), size_bytes=artifact_size(bad)), bad)
    return bad


def test_max_top1_drop_fails_an_artifact_that_loses_more_and_records_it(digits_onnx, digits_split, tmp_path):
    good = copy_artifact(digits_onnx, tmp_path / "good")
    bad = _damaged(digits_onnx, tmp_path / "bad", label=8, delta=20.0)
    shown = invoke("eval", good, bad, "--data", digits_split, "-c", DIGITS, "--max-top1-drop", "0.5", "--threads", "1",
                   "--json", tmp_path / "eval.json", "--markdown", tmp_path / "eval.md")
    assert "top-1 dropped more than 0.5 pp for 1 of 2 artifacts" in one_line_error(shown, code=1)
    report = json.loads((tmp_path / "eval.json").read_text())
    eager, fine, worse = report["results"]
    assert eager["top1"] == pytest.approx(358 / 359) and eager["correct"] == 358  # the recorded held-out figure
    assert fine["top1"] == eager["top1"] and fine["passed"] and fine["agreement"] == 1.0
    assert worse["passed"] is False and worse["top1_drop"]["drop_pp"] > 5 and not report["passed"]
    assert worse["worst_classes"][0]["label"] == 8 and worse["worst_classes"][0]["candidate_top1"] < 0.5
    low, high = worse["top1_drop"]["ci95_pp"]
    assert 0 < low < worse["top1_drop"]["drop_pp"] < high
    assert "| FAIL (max 0.5 pp) |" in (tmp_path / "eval.md").read_text()
    assert f"model: {bad} | format: onnx" in shown.stdout and "gate: FAIL (max 0.5 pp)" in shown.stdout

    record = manifests.load(bad).latest_evaluation
    assert record.passed is False and record.max_top1_drop == 0.5 and record.dataset.files == 359
    assert record.dataset.classes == 10 and record.dataset.source == str(digits_split.resolve())
    facts = json.loads(invoke("info", bad, "--json", "-").stdout)
    assert facts["evaluation"]["evaluated_these_bytes"] and facts["evaluation"]["top1"] == worse["top1"]
    assert "gate FAIL (max 0.5 pp); 359 images of 10 classes" in invoke("info", bad).stdout
    assert "not evaluated" in invoke("info", digits_onnx).stdout


def test_a_list_file_of_the_same_files_gives_the_same_fingerprint_and_top1(digits_onnx, digits_split, tmp_path):
    folder = read_labelled(digits_split, 10)
    listing = digits_split / "val.txt"
    listing.write_text("".join(f"{path} {label}\n" for path, label in reversed(folder.items)))
    try:
        from_list = read_labelled(listing, 10)
        assert from_list.fingerprint == folder.fingerprint and from_list.kind == "list"
        shown = invoke("eval", digits_onnx, "--data", listing, "--threads", "1", "--json", "-")
    finally:
        listing.unlink()
    assert shown.exit_code == 0, shown.output
    assert [r["correct"] for r in json.loads(shown.stdout)["results"]] == [358, 358]
    assert manifests.load(digits_onnx).latest_evaluation.dataset.kind == "list"


def test_the_trained_checkpoint_s_artifact_passes_casvit_parity(digits_onnx, digits_split):
    shown = invoke("parity", digits_onnx, "--images", digits_split / "3", "--json", "-")
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    assert report["passed"] and report["reports"][0]["input_sets"][1]["sources"][0].endswith(".png")


@pytest.mark.slow  # ~70 s; its fast sibling: test_a_top1_budget_on_labelled_images_stops_the_search_where_...
def test_auto_keep_float_with_a_top1_budget_stops_where_cosine_would_go_on(digits_split, tmp_path):
    """With a 0.5 pp budget on the held-out digits, the search stops as soon as the drop is within it
    and the cosine at the parity gate's int8 floor, though that cosine is below --min-cosine."""
    out = tmp_path / "int8"
    shown = invoke("export", "-f", "onnx", "-c", DIGITS, "-r", "32", "-p", "int8", "--auto-keep-float",
                   "--min-cosine", "0.99999", "--data", digits_split, "--max-top1-drop", "0.5", "-o", out)
    assert shown.exit_code == 0, shown.output
    artifact = next(out.glob("*.onnx"))
    config = manifests.load(artifact).quantization.config
    assert config["chosen_by"] == "top-1 drop on labelled data" and config["max_top1_drop"] == 0.5
    chosen = config["search"][-1]
    assert chosen["cosine"] < 0.99999 and chosen["top1_drop_pp"] <= 0.5  # cosine alone would go on
    assert config["labelled_data"]["files"] == 359
    info = invoke("info", artifact)
    assert "chosen by top-1 drop on labelled data" in " ".join(info.stdout.split()), info.stdout
    refused = invoke("export", "-f", "onnx", "-r", "32", "-p", "int8", "--data", digits_split,
                     "--max-top1-drop", "0.5", "-o", tmp_path / "no")
    assert "add it" in one_line_error(refused)


def test_info_says_which_criterion_chose_an_auto_keep_float_result():
    from casvit_deploy.commands.info import _search_text
    from casvit_deploy.store.describe import _search

    trials = [{"cosine": 0.984, "top1_drop_pp": 0.84}, {"cosine": 0.9985, "top1_drop_pp": 0.28}]
    data = {"source": "heldout", "files": 359}
    by_top1 = _search({"auto_keep_float": True, "chosen_by": "top-1 drop on labelled data", "min_cosine": 0.999,
                       "max_top1_drop": 0.5, "labelled_data": data, "search": trials})
    assert _search_text(by_top1) == ("--auto-keep-float: chosen by top-1 drop on labelled data after 2 trial(s): "
                                     "top-1 drop 0.28 pp (budget 0.5 pp) on 359 labelled images of heldout")
    by_cosine = _search({"auto_keep_float": True, "chosen_by": "cosine", "min_cosine": 0.999,
                         "search": [{"cosine": 0.99951}]})
    assert _search_text(by_cosine) == "--auto-keep-float: chosen by cosine after 1 trial(s): cosine 0.99951 (target 0.999)"
    assert _search({"auto_keep_float": False, "chosen_by": "not searched"}) is None


def test_plot_draws_accuracy_against_latency_measured_in_the_run(digits_onnx, digits_split, tmp_path):
    pytest.importorskip("matplotlib")
    small = tmp_path / "data"
    for label in ("0", "1"):
        (small / label).mkdir(parents=True)
        for png in sorted((digits_split / label).iterdir())[:3]:
            (small / label / png.name).write_bytes(png.read_bytes())
    chart = tmp_path / "chart.png"
    shown = invoke("eval", digits_onnx, "--data", small, "--threads", "1", "--plot", chart, "--json", "-")
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    assert all(r["latency"]["p50_ms"] > 0 and r["latency"]["runs"] == 30 for r in report["results"])
    assert report["latency_method"].startswith("measured in this run")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- refusals: one line, exit 2, nothing recorded --------------------------------------------------

def _tree(root: Path, layout: dict[str, int], image=lambda: Image.new("RGB", (8, 8))) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, count in layout.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image().save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize("layout, message", [
    ({}, "holds no class folders"),
    ({"0": 0, "1": 0}, "holds no images"),
    ({"cat": 1, "dog": 1}, "'cat' is not a class index or an ImageNet synset id"),
    ({"3": 1, "12": 1}, "'12' is class index 12, but the model's head has 10 classes"),
    ({"n01440764": 1, "n01443537": 1}, "are 2 ImageNet synset ids, not all 1000"),
])
def test_bad_trees_are_refused_in_one_line(layout, message, tmp_path):
    with pytest.raises(UsageError, match=message):
        read_labelled(_tree(tmp_path / "data", layout), 10)


def test_synset_folders_map_by_sorted_order_only_when_all_1000_are_there(tmp_path):
    names = [f"n{i:08d}" for i in range(1000)]
    indices = read_labelled.__globals__["class_indices"](list(reversed(names)), 1000, None, "folder")
    assert indices["n00000000"] == 0 and indices["n00000999"] == 999
    with pytest.raises(UsageError, match="the model's head has 10 classes"):
        read_labelled.__globals__["class_indices"](names, 10, None, "folder")


def test_class_names_and_list_files(tmp_path):
    root = _tree(tmp_path / "data", {"cat": 1, "dog": 2})
    assert read_labelled(root, 3, ["bird", "cat", "dog"]).labels == [1, 2, 2]
    with pytest.raises(UsageError, match="'cat' is not a name in --labels"):
        read_labelled(root, 2, ["bird", "dog"])
    (tmp_path / "bad.txt").write_text("dog/0.png 2\nonlyone\n")
    with pytest.raises(UsageError, match="line 2: 'onlyone' is not `path label`"):
        read_labelled(tmp_path / "bad.txt", 3)
    (root / "stray.png").write_bytes(b"")
    with pytest.raises(UsageError, match="images outside class folders"):
        read_labelled(root, 3, ["bird", "cat", "dog"])


def test_cli_refusals_are_one_line_and_record_nothing(digits_onnx, tmp_path):
    before = manifests.load(digits_onnx).evaluations
    unreadable = _tree(tmp_path / "unreadable", {"0": 2})
    (unreadable / "0" / "1.png").write_bytes(b"not a png")
    assert "cannot read image" in one_line_error(invoke("eval", digits_onnx, "--data", unreadable, "--threads", "1"))
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    names = _tree(tmp_path / "names", {"a": 1})
    assert "has 3 labels, the model has 10 classes" in one_line_error(
        invoke("eval", digits_onnx, "--data", names, "--labels", labels))
    assert "no such folder or file" in one_line_error(invoke("eval", digits_onnx, "--data", tmp_path / "missing"))
    assert "--max-top1-drop nan" in one_line_error(
        invoke("eval", digits_onnx, "--data", names, "--max-top1-drop", "nan"))
    assert manifests.load(digits_onnx).evaluations == before


def test_a_backbone_and_mixed_label_spaces_are_refused():
    from casvit_deploy.eval.subjects import _check_classifier
    from tests.manifest_helpers import minimal_manifest

    manifest = minimal_manifest()
    with pytest.raises(UsageError, match="dense-prediction backbone"):
        _check_classifier(replace(manifest, num_classes=0), Path("b.onnx"), None)
    with pytest.raises(UsageError, match="one labelled set has one label space"):
        _check_classifier(manifest, Path("a.onnx"), 10)


# --- statistics -----------------------------------------------------------------------------------

def test_top_classes_take_the_first_of_ties_as_argmax_does():
    scores = np.array([[0.0, 2.0, 2.0, 1.0], [3.0, 3.0, 3.0, 3.0]])
    assert top_classes(scores, 3).tolist() == [[1, 2, 3], [0, 1, 2]]
    assert top_classes(scores, 10).shape == (2, 4)


def test_paired_interval_matches_newcombe_method_10_by_hand():
    """a=14 both right, b=5 only the reference, c=0, d=22 (Altman et al. 2000, table 6.2)."""
    reference = np.array([1] * 19 + [0] * 22, bool)
    candidate = np.array([1] * 14 + [0] * 27, bool)
    drop = paired_drop(reference, candidate)
    (l1, u1), (l2, u2) = wilson(19, 41), wilson(14, 41)
    phi = (14 * 22 - 41 / 2) / np.sqrt(19 * 22 * 14 * 27)
    p1, p2 = 19 / 41, 14 / 41
    low = p1 - p2 - np.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    high = p1 - p2 + np.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    assert (drop.only_reference, drop.only_candidate) == (5, 0)
    assert drop.drop_pp == pytest.approx(100 * 5 / 41) and drop.low_pp == pytest.approx(100 * low)
    assert drop.high_pp == pytest.approx(100 * high) and 0 < drop.low_pp < drop.drop_pp < drop.high_pp


def test_paired_interval_has_width_without_disagreement_and_narrows_with_more_images():
    small, large = paired_drop(np.ones(100, bool), np.ones(100, bool)), paired_drop(np.ones(10_000, bool),
                                                                                     np.ones(10_000, bool))
    assert small.drop_pp == 0 and small.low_pp < 0 < small.high_pp
    assert 0 < large.high_pp < small.high_pp
    exact = paired_drop(np.array([1, 1] + [1] * 398, bool), np.array([0, 0] + [1] * 398, bool))
    assert exact.drop_pp == 0.5  # 2 of 400: exactly the budget, no rounding above it


def test_worst_classes_lists_only_classes_that_drop():
    labels = np.array([0, 0, 1, 1, 2, 2])
    reference = np.array([1, 1, 1, 1, 0, 0], bool)
    candidate = np.array([1, 0, 0, 0, 1, 1], bool)
    assert [(w.label, w.drop_pp) for w in worst_classes(labels, reference, candidate)] == [(1, 100.0), (0, 50.0)]
