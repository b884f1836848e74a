"""`casvit export` failure paths and orchestration: exit codes, one-line errors, atomic
writes, --force, --format all. Fake exporters stand in where the backend is not the point."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from casvit_deploy.artifacts.records import TensorSpec
from casvit_deploy.cli import app
from casvit_deploy.errors import ExportError, UsageError
from casvit_deploy.export.base import FormatOutput
from casvit_deploy.export.graph import export_program
from casvit_deploy.model import load_model
from casvit_deploy.pipeline import export as api
from casvit_deploy.pipeline import export_model
from casvit_deploy.store import manifests
from casvit_deploy.store.manifests import manifest_path


@pytest.fixture
def cli():
    return CliRunner()


def invoke(cli, *args):
    return cli.invoke(app, ["export", *args], env={"COLUMNS": "200"})


_PROGRAMS: dict = {}


def _program(model, resolution):
    """One torch.export per resolution for all fakes (the fakes all export XS)."""
    if resolution not in _PROGRAMS:
        _PROGRAMS[resolution] = export_program(model, 1, resolution, False)
    return _PROGRAMS[resolution]


class FakeExporter:
    """Writes `payload` (or fails after writing half of it) instead of a real artifact."""

    def __init__(self, fail: bool = False, payload: bytes = b"artifact"):
        self.fail, self.payload = fail, payload

    def export(self, job):
        job.artifact.write_bytes(self.payload[: len(self.payload) // 2] if self.fail else self.payload)
        if self.fail:
            raise RuntimeError("backend exploded\nsecond line of backend noise")
        program = _program(job.model, job.resolution)
        spec = [TensorSpec("image", (1, 3, job.resolution, job.resolution), "float32")]
        return FormatOutput(program, spec, [TensorSpec("logits", (1, 1000), "float32")])


@pytest.fixture
def fakes(monkeypatch):
    """Replace every format's exporter by a fake; returns the dict to tweak."""
    fake = {name: FakeExporter() for name in ("onnx", "ort", "coreml", "executorch", "litert")}
    monkeypatch.setattr(api, "exporter_for", lambda fmt: fake[fmt.name])
    return fake


def single_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in result.stderr
    return lines[-1]


@pytest.mark.parametrize("args, message", [
    (["--format", "tflite"], r"unknown format 'tflite': choose one of onnx, ort, coreml, executorch"),
    (["--format", "onnx", "--opset", "16"], r"--opset 16: choose one of 17, 18, 19, 20"),
    (["--format", "coreml", "--labels", "/nonexistent/labels.txt"], r"--labels /nonexistent/labels.txt: no such file"),
    (["--format", "coreml", "--precision", "fp32", "--fp16-output"], r"--fp16-output applies to fp16"),
    (["--format", "coreml", "--labels", "imagenet", "--batch", "2"], r"classifies one image per prediction"),
    (["--format", "onnx", "--resolution", "100"], r"--resolution 100 is not a multiple of 32 between 32 and 2048"),
    (["--format", "onnx", "--batch", "0"], r"--batch 0 must be from 1 to 4096"),
    (["--format", "ort", "--precision", "int8"], r"ort export supports precision fp32, not 'int8'"),
    (["--format", "onnx", "--precision", "int4"], r"'int4' is not one of 'fp32', 'fp16', 'int8'"),
    (["--format", "onnx", "--delegate", "tpu"], r"'tpu' is not one of"),
    (["--format", "onnx", "--batch", "lots"], r"Invalid value for '--batch'"),
    (["--format", "onnx", "--json", "/nonexistent/r.json"], r"--json /nonexistent/r.json: folder /nonexistent"),
    (["--format", "onnx", "--variant", "xxl"], r"unknown variant 'xxl'"),
    # a flag given is judged as given, even at its default value
    (["--format", "onnx", "--deployment-target", "iOS16"], r"--deployment-target applies to coreml only"),
    (["--format", "onnx", "--min-cosine", "0.999"], r"--min-cosine applies to --precision int8 or w8a8 only"),
    (["--format", "onnx,ort", "--delegate", "xnnpack"], r"--delegate applies to executorch only"),
])
def test_bad_input_exits_2_with_one_line(cli, tmp_path, args, message):
    result = invoke(cli, *args, "--out", str(tmp_path / "out"), "--no-check")
    assert result.exit_code == 2
    assert re.search(message, single_line_error(result))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bad_checkpoint_exits_2(cli, tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint at all")
    result = invoke(cli, "--format", "onnx", "--checkpoint", str(bad), "--out", str(tmp_path / "o"), "--no-check")
    assert result.exit_code == 2 and "broken.pth" in single_line_error(result)


def test_unwritable_out_dir_exits_2(cli, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = invoke(cli, "--format", "onnx", "-r", "32", "--out", str(blocker / "sub"), "--no-check")
    assert result.exit_code == 2 and "not writable" in single_line_error(result)


def test_missing_backend_names_pip_install(cli, tmp_path, monkeypatch):
    from casvit_deploy.artifacts import format as formats

    real = formats.importlib.util.find_spec
    monkeypatch.setattr(formats.importlib.util, "find_spec",
                        lambda name, *a: None if name == "coremltools" else real(name, *a))
    result = invoke(cli, "--format", "coreml", "-r", "32", "--out", str(tmp_path), "--no-check")
    assert result.exit_code == 2 and "pip install 'casvit-deploy[coreml]'" in single_line_error(result)


def test_precision_not_offered_by_format(tmp_path):
    with pytest.raises(UsageError, match="onnx export supports precision fp32"):
        export_model(load_model(variant="xs"), "onnx", tmp_path, resolution=32, precision="fp16")


def test_failed_export_leaves_nothing_and_keeps_previous(fakes, tmp_path):
    loaded = load_model(variant="xs")
    good = export_model(loaded, "onnx", tmp_path, resolution=32)
    before = good.artifact.read_bytes(), manifest_path(good.artifact).read_text()
    fakes["onnx"].fail = True
    with pytest.raises(ExportError, match="onnx export failed: RuntimeError: backend exploded$"):
        export_model(loaded, "onnx", tmp_path, resolution=32, force=True)
    assert (good.artifact.read_bytes(), manifest_path(good.artifact).read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [good.artifact.name, manifest_path(good.artifact).name]


def test_existing_artifact_needs_force(fakes, tmp_path):
    loaded = load_model(variant="xs")
    first = export_model(loaded, "onnx", tmp_path, resolution=32)
    fakes["onnx"].payload = b"a newer artifact"
    with pytest.raises(UsageError, match="already exists; pass --force"):
        export_model(loaded, "onnx", tmp_path, resolution=32)
    assert first.artifact.read_bytes() == b"artifact"
    second = export_model(loaded, "onnx", tmp_path, resolution=32, force=True)
    assert second.artifact.read_bytes() == b"a newer artifact"
    assert second.manifest.sha256 != first.manifest.sha256


def test_force_replaces_a_package_folder(fakes, tmp_path):
    """A directory artifact (.mlpackage) is swapped whole, old contents gone."""
    loaded = load_model(variant="xs")
    target = tmp_path / "casvit_xs_32_fp16.mlpackage"
    target.mkdir()
    (target / "old_weights.bin").write_text("old")
    result = export_model(loaded, "coreml", tmp_path, resolution=32, precision="fp16", force=True)
    assert result.artifact == target and target.is_file() and target.read_bytes() == b"artifact"
    assert not list(tmp_path.glob(".casvit-staging-*"))


def test_format_all_runs_each_format_independently(cli, fakes, tmp_path):
    fakes["coreml"].fail = True
    result = invoke(cli, "--format", "all", "-r", "32", "--out", str(tmp_path), "--no-check")
    assert result.exit_code == 1
    rows = {line.split("format: ")[1].split(" |")[0]: line for line in result.stdout.splitlines() if "format: " in line}
    assert "ok" in rows["onnx"] and "ok" in rows["executorch"]
    assert "failed" in rows["coreml"] and "backend exploded" in rows["coreml"]
    assert "random weights, not pretrained" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["casvit_xs_32_fp32.onnx", "casvit_xs_32_fp32.onnx.manifest.json", "casvit_xs_32_fp32.ort",
         "casvit_xs_32_fp32.ort.manifest.json", "casvit_xs_32_fp32.pte", "casvit_xs_32_fp32.pte.manifest.json",
         "casvit_xs_32_fp32.tflite", "casvit_xs_32_fp32.tflite.manifest.json"])


def test_summary_in_an_80_column_log_is_whole_with_stage_lines(cli, fakes, tmp_path):
    out = tmp_path / "a_folder_with_a_long_name_to_push_the_table_past_eighty_columns"
    result = cli.invoke(app, ["export", "-f", "onnx,executorch", "-r", "32", "--out", str(out), "--no-check"],
                        env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout and "│" not in result.stdout
    for name in ("casvit_xs_32_fp32.onnx", "casvit_xs_32_fp32.pte", str(out)):
        assert name in result.stdout
    stages = [line.split("] ", 1)[1] for line in result.stderr.splitlines()]
    assert stages[:3] == ["load model", "onnx: rewrite", "onnx: save"] and "executorch: save" in stages


def test_format_all_json_and_default_precisions(cli, fakes, tmp_path):
    import json

    result = invoke(cli, "--format", "all", "-r", "32", "--out", str(tmp_path), "--no-check", "--json", "-")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["results"]
    assert [(r["format"], r["status"]) for r in rows] == [("onnx", "ok"), ("ort", "ok"), ("coreml", "ok"),
                                                          ("executorch", "ok"), ("litert", "ok")]
    assert rows[2]["file"].endswith("casvit_xs_32_fp16.mlpackage")
    assert rows[0]["file"].endswith("casvit_xs_32_fp32.onnx")


def test_format_all_skips_a_format_whose_extra_is_missing(cli, fakes, tmp_path, monkeypatch):
    import json

    from casvit_deploy.artifacts.format import Package

    installed = Package.installed
    monkeypatch.setattr(Package, "installed", lambda p: p.module != "litert_torch" and installed(p))
    result = invoke(cli, "--format", "all", "-r", "32", "--out", str(tmp_path), "--no-check", "--json", "-")
    assert result.exit_code == 0, result.stderr
    rows = {r["format"]: r for r in json.loads(result.stdout)["results"]}
    assert [f for f, r in rows.items() if r["status"] == "ok"] == ["onnx", "ort", "coreml", "executorch"]
    assert rows["litert"]["status"] == "skipped" and "pip install 'casvit-deploy[litert]'" in rows["litert"]["reason"]
    named = invoke(cli, "--format", "litert", "-r", "32", "--out", str(tmp_path / "x"), "--no-check")
    assert named.exit_code == 2 and "pip install 'casvit-deploy[litert]'" in single_line_error(named)


def test_parity_not_available_is_recorded(cli, fakes, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "casvit_deploy.parity", None)  # import fails as if not written yet
    result = invoke(cli, "--format", "onnx", "-r", "32", "--out", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    record = manifests.load(tmp_path / "casvit_xs_32_fp32.onnx").latest_parity
    assert record.status == "not run" and "unavailable" in record.reason


def test_real_onnx_export_with_parity_check(cli, xs_checkpoint, tmp_path):
    """End to end: official-format checkpoint -> ONNX -> parity recorded in the manifest."""
    import json

    report = tmp_path / "export.json"
    result = invoke(cli, "--format", "onnx", "-c", str(xs_checkpoint), "-r", "64", "--out", str(tmp_path),
                    "--json", str(report))
    assert result.exit_code == 0, result.stderr
    assert "casvit export" in result.stdout  # a file report keeps the table
    assert "onnx: opset 20, IR 9: loads in ONNX Runtime >= 1.17" in result.stdout
    assert "onnx: ORT mobile: CoreML MLProgram EP takes the whole graph; NNAPI 21 partitions" in result.stdout
    row = json.loads(report.read_text())["results"][0]
    assert row["status"] == "ok" and row["parity"] == "pass"
    record = manifests.load(tmp_path / "casvit_xs_64_fp32.onnx").latest_parity
    assert record.status == "pass" and record.sha256 == manifests.load(tmp_path / "casvit_xs_64_fp32.onnx").sha256


def test_formats_repeat_and_comma_separate(cli, fakes, tmp_path):
    import json

    result = invoke(cli, "-f", "onnx", "--format", "executorch,onnx", "-r", "32", "--out", str(tmp_path),
                    "--no-check", "--json", "-")
    assert result.exit_code == 0, result.stderr
    assert [r["format"] for r in json.loads(result.stdout)["results"]] == ["onnx", "executorch"]


class FailingReport:
    passed, failures = False, ["random: logits: max abs error 3 > 0.0001"]


def test_failing_parity_publishes_nothing(cli, fakes, tmp_path, monkeypatch):
    """The parity check runs on the staged artifact: a failure leaves no artifact behind."""
    import casvit_deploy.parity

    checked = []
    monkeypatch.setattr(casvit_deploy.parity, "check_artifact",
                        lambda staged, loaded, report_as, **_: checked.append((staged, report_as)) or FailingReport())
    result = invoke(cli, "--format", "onnx,executorch", "-r", "32", "--out", str(tmp_path), "--json", "-")
    assert result.exit_code == 1
    rows = {r["format"]: r for r in __import__("json").loads(result.stdout)["results"]}
    assert [(r["status"], r["parity"]) for r in rows.values()] == [("failed", "fail")] * 2
    assert "max abs error 3" in rows["onnx"]["reason"] and "was not published" in rows["onnx"]["reason"]
    assert list(tmp_path.iterdir()) == []
    assert [report_as.name for _, report_as in checked] == ["casvit_xs_32_fp32.onnx", "casvit_xs_32_fp32.pte"]
    assert all(".casvit-staging-" in str(staged) for staged, _ in checked)
