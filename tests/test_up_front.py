"""Every check that needs no model runs before the model is loaded (issue 25, item 8): the
deployment target a compression needs (without importing coremltools), the calibration
folder (images present, regular files, headers readable: only those that will be used), a
labels file's contents; and every check that needs the model runs, for every format, before
any format is exported (labels one per class, an artifact already at a destination)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from casvit_deploy.cli import app
from casvit_deploy.errors import UsageError
from casvit_deploy.pipeline import ExportRequest, plan
from tests.fakes import error_lines


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: what is refused here must be refused before."""
    import casvit_deploy.model as model
    import casvit_deploy.model.loading as loading

    def loaded(*_args, **_kwargs):
        pytest.fail("the model was loaded before the request was refused")

    monkeypatch.setattr(model, "load_model", loaded)
    monkeypatch.setattr(loading, "load_model", loaded)


def _png(path, size=(8, 8)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 30, 200)).save(path)
    return path


def _export(tmp_path, *args):
    return CliRunner().invoke(app, ["export", "-r", "32", "-o", str(tmp_path / "out"), "--no-check", *args],
                              env={"COLUMNS": "200"})


def _refused(result, message: str) -> None:
    lines = error_lines(result.stderr)
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
    assert "load model" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["-f", "coreml", "--palettize", "4"], "--palettize 4 needs --deployment-target iOS18"),
    (["-f", "coreml", "-p", "w8a8"], "--precision w8a8 needs --deployment-target iOS17"),
    (["-f", "coreml", "--deployment-target", "iOS99"], "unknown or too old deployment target 'iOS99'"),
    (["-f", "onnx,executorch", "-p", "int8", "--calibration", "{empty}"], "holds no images"),
    (["-f", "onnx", "-p", "int8", "--calibration", "{zero_byte_first}"], "cannot read image"),
    (["-f", "coreml", "--labels", "{blank_line}"], "line 2 is blank"),
    (["-f", "coreml", "--labels", "{control}"], "holds the control character"),
    (["-f", "onnx,ort", "-p", "int8"], "ort export supports precision fp32"),
])
def test_refused_before_the_model_is_loaded(args, message, tmp_path, no_model):
    (tmp_path / "empty").mkdir()
    (tmp_path / "zero").mkdir()
    (tmp_path / "zero" / "a.png").write_bytes(b"")
    _png(tmp_path / "zero" / "b.png")
    (tmp_path / "blank.txt").write_text("cat\n\ndog\n")
    (tmp_path / "control.txt").write_text("cat\nd\x07g\n")
    places = {"empty": tmp_path / "empty", "zero_byte_first": tmp_path / "zero", "blank_line": tmp_path / "blank.txt",
              "control": tmp_path / "control.txt"}
    _refused(_export(tmp_path, *[a.format(**places) for a in args]), message)
    assert not (tmp_path / "out").exists()


def test_the_deployment_target_is_checked_without_importing_coremltools():
    """coremltools takes seconds to import: the check uses the table it is tested against."""
    code = ("import sys\nfrom casvit_deploy.pipeline import ExportRequest, plan\n"
            "try:\n    plan(ExportRequest(('coreml',), options={'palettize': 4}))\nexcept Exception as err:\n"
            "    print(type(err).__name__, 'coremltools' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["UsageError", "False"], done.stderr


def test_the_target_table_is_coremltools_own():
    import coremltools as ct

    from casvit_deploy.formats.coreml.compression import TARGETS, deployment_target, target_level

    for platform, versions in TARGETS.items():
        offered = sorted(int(name[len(platform):]) for name in ct.target.__members__ if name.startswith(platform)
                         and name[len(platform):].isdigit() and int(name[len(platform):]) >= versions[0])
        assert tuple(offered) == versions, platform
        for level, version in enumerate(versions):
            assert int(deployment_target(f"{platform}{version}")) == int(ct.target.iOS16) + level
            assert target_level(f"{platform.lower()}{version}") == level


def test_only_the_calibration_images_used_are_opened(tmp_path, no_model):
    """`--calibration-samples 1` checks (and later reads) the first image only: an unused
    0-byte file after it is no reason to refuse."""
    folder = tmp_path / "cal"
    _png(folder / "a.png")
    (folder / "b.png").write_bytes(b"")
    request = ExportRequest(("onnx",), precision="int8", int8={"calibration": folder, "calibration_samples": 1})
    assert plan(request).formats[0].settings.options.int8.calibration_samples == 1
    with pytest.raises(UsageError, match="b.png: not in an image format"):
        plan(ExportRequest(("onnx",), precision="int8", int8={"calibration": folder}))


class Recorder:
    """An exporter that must not run."""

    def export(self, job):
        pytest.fail(f"{job.format.name} was exported before every format was checked")


def test_checks_that_need_the_model_run_for_every_format_before_any_export(tmp_path, monkeypatch):
    from casvit_deploy.pipeline import export as api

    monkeypatch.setattr(api, "exporter_for", lambda fmt: Recorder())
    labels = tmp_path / "three.txt"
    labels.write_text("a\nb\nc\n")
    result = _export(tmp_path, "-f", "onnx,coreml", "--labels", str(labels))
    assert result.exit_code == 2 and error_lines(result.stderr) == [
        f"error: labels file {labels} has 3 labels, the model has 1000 classes"]
    existing = tmp_path / "out" / "casvit_xs_32_fp32.pte"
    existing.parent.mkdir()
    existing.write_bytes(b"an earlier export")
    for formats in ("executorch", "onnx,executorch"):  # the same line and code, one format or several
        result = _export(tmp_path, "-f", formats)
        assert result.exit_code == 2 and error_lines(result.stderr) == [
            f"error: {existing} already exists; pass --force to replace it"], result.output
    assert sorted(p.name for p in existing.parent.iterdir()) == [existing.name]
