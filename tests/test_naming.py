"""Artifact names (issue 25, item 10): the options that change an artifact are in its name,
so artifacts made with other options never collide and the README's examples run in order
without --force; each format's options say which of their fields are named (`name_tags`,
`unnamed`); the same failure gives the same exit code and one `error:` line whether one
format or several were asked for."""

from __future__ import annotations

import dataclasses
import typing
from enum import Enum
from pathlib import Path

import pytest
from typer.testing import CliRunner

from casvit_deploy.artifacts.options import MAX_TAG_CHARS, Int8Options
from casvit_deploy.cli import app
from casvit_deploy.export.base import ExportSettings
from casvit_deploy.formats import FORMATS, get_format
from casvit_deploy.formats.coreml.options import CoreMLOptions
from casvit_deploy.formats.executorch.options import Delegate, ExecuTorchOptions
from casvit_deploy.formats.onnx.options import OnnxOptions
from casvit_deploy.formats.ort.options import OrtOptions
from casvit_deploy.pipeline.naming import artifact_name
from casvit_deploy.settings import CalibrationMethod, Precision, Resolution
from tests.fakes import error_lines
from tests.test_export_cli import FakeExporter

R224 = Resolution.parse(224)


def _name(fmt: str, options, precision: str | None = None) -> str:
    record = get_format(fmt)
    settings = ExportSettings(Precision(precision) if precision else record.default_precision, 1, False, False, options)
    return artifact_name(record, "xs", R224, settings)


@pytest.mark.parametrize("fmt, options, precision, name", [
    ("onnx", OnnxOptions(), None, "casvit_xs_224_fp32.onnx"),
    ("onnx", OnnxOptions(opset=17), None, "casvit_xs_224_fp32_opset17.onnx"),
    ("ort", OrtOptions(opset=17), None, "casvit_xs_224_fp32_opset17.ort"),  # named by its ONNX source's opset
    ("ort", OrtOptions(opset=20), None, "casvit_xs_224_fp32.ort"),  # the default, given
    ("coreml", CoreMLOptions(image_input=True, labels=Path("imagenet"), author="Me", version="1.2"), None,
     "casvit_xs_224_fp16_image_imagenet.mlpackage"),
    ("coreml", CoreMLOptions(labels=Path("my labels.txt")), None, "casvit_xs_224_fp16_labels-my-labels.mlpackage"),
    ("coreml", CoreMLOptions(palettize=4, deployment_target="iOS18"), None,
     "casvit_xs_224_fp16_palettized4_ios18.mlpackage"),
    ("coreml", CoreMLOptions(deployment_target="iOS17", int8=Int8Options()), "w8a8", "casvit_xs_224_w8a8_ios17.mlpackage"),
    ("executorch", ExecuTorchOptions(delegate=Delegate.PORTABLE, allow_portable=True), None,
     "casvit_xs_224_fp32_portable.pte"),
    ("onnx", OnnxOptions(int8=Int8Options(calibration=Path("data/imgs/"), calibration_samples=200)), "int8",
     "casvit_xs_224_int8_cal-imgs_n200.onnx"),
    ("executorch", ExecuTorchOptions(int8=Int8Options(keep_float=("network.2.1", "head"))), "int8",
     "casvit_xs_224_int8_keep-network.2.1-head.pte"),
    ("executorch", ExecuTorchOptions(int8=Int8Options(auto_keep_float=True, calibration_method=CalibrationMethod.MINMAX,
                                                       quantize_residual=True)), "int8",
     "casvit_xs_224_int8_minmax_residual_autokeep.pte"),
    ("onnx", OnnxOptions(int8=Int8Options(auto_keep_float=True, min_cosine=0.9995)), "int8",
     "casvit_xs_224_int8_autokeep0.9995.onnx"),
])
def test_names_say_the_options_that_shape_the_artifact(fmt, options, precision, name):
    assert _name(fmt, options, precision) == name


def test_a_long_or_odd_tag_stays_a_short_file_name_part():
    blocks = tuple(f"network.{i}.{j}" for i in range(0, 7, 2) for j in range(3))
    tags = Int8Options(keep_float=blocks, calibration=Path("/x/../a b/\u00e9t\u00e9 *?")).name_tags()
    assert all(len(tag) <= MAX_TAG_CHARS and "/" not in tag and " " not in tag for tag in tags), tags
    assert tags[0] == "cal-t" and tags[1] != Int8Options(keep_float=blocks[:-1]).name_tags()[0]


def _other_value(owner: type, field: dataclasses.Field):
    """A valid value of `field` other than its default."""
    samples = {"opset": 17, "labels": Path("labels.txt"), "deployment_target": "iOS17", "palettize": 8,
               "calibration": Path("imgs"), "calibration_samples": 7, "keep_float": ("head",), "min_cosine": 0.99,
               "max_top1_drop": 0.5}
    hint = typing.get_type_hints(owner)[field.name]
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    if field.name in samples:
        return samples[field.name]
    if base is bool:
        return not field.default
    if base is str:
        return "other text"
    if isinstance(base, type) and issubclass(base, Enum):
        return next(member for member in base if member != field.default)
    pytest.fail(f"{owner.__name__}.{field.name}: add a sample value to this test (or list it in `unnamed`)")


_BUDGET = {"data": Path("val"), "auto_keep_float": True}  # what --max-top1-drop goes with


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_option_that_is_not_unnamed_changes_the_name(fmt):
    """A format's options say which of their fields shape its artifacts: every field not in
    `unnamed`, and every int8 setting, changes the name when it leaves its default."""
    record = FORMATS[fmt]
    base = record.options()
    for field in dataclasses.fields(record.options):
        if field.name in ("int8", "data"):  # data: a top-1 budget's images, named with max_top1_drop
            continue
        before = base if field.name != "max_top1_drop" else dataclasses.replace(base, fp16_safe=True)
        changes = {field.name: _other_value(record.options, field)} | (
            {"data": Path("val")} if field.name == "max_top1_drop" else {})
        changed = _name(fmt, dataclasses.replace(before, **changes))
        assert (changed == _name(fmt, before)) == (field.name in record.options.unnamed), field.name
    if record.calibration_methods:
        int8 = record.options(int8=Int8Options())
        for field in dataclasses.fields(Int8Options):
            if field.name in ("min_cosine", "data"):  # auto_keep_float's target, and max_top1_drop's data
                continue
            value = _other_value(Int8Options, field) if field.name != "calibration_method" else record.calibration_methods[-1]
            before = int8.int8 if field.name != "max_top1_drop" else dataclasses.replace(int8.int8, auto_keep_float=True)
            changes = {field.name: value} | (_BUDGET if field.name == "max_top1_drop" else {})
            other = dataclasses.replace(int8, int8=dataclasses.replace(before, **changes))
            assert _name(fmt, other, "int8") != _name(fmt, dataclasses.replace(int8, int8=before), "int8"), field.name


@pytest.fixture
def fakes(monkeypatch):
    from casvit_deploy.pipeline import export as api

    fake = {name: FakeExporter() for name in FORMATS}
    monkeypatch.setattr(api, "exporter_for", lambda fmt: fake[fmt.name])
    return fake


def _casvit(*args):
    return CliRunner().invoke(app, [*args], env={"COLUMNS": "200"})


def test_the_readme_s_examples_run_in_order_without_force(fakes, tmp_path, monkeypatch):
    """The README's order: --format all, then an Xcode classifier, then opset 17 for ONNX and
    ORT; each lands beside the others in the default folders (fake exporters, 32x32)."""
    monkeypatch.chdir(tmp_path)
    for args in (["--format", "all"],
                 ["-f", "coreml", "--image-input", "--labels", "imagenet", "--author", "Me", "--model-version", "1.2"],
                 ["-f", "onnx,ort", "--opset", "17"]):
        result = _casvit("export", *args, "-r", "32", "--no-check")
        assert result.exit_code == 0, result.output
    exports = tmp_path / "models" / "exports"
    litert = ["casvit_xs_32_fp32.tflite"] if all(p.installed() for p in get_format("litert").export_packages) else []
    assert sorted(p.name for p in (exports / "xs_32_fp32").iterdir() if not p.name.endswith(".json")) == [
        "casvit_xs_32_fp32.onnx", "casvit_xs_32_fp32.ort", "casvit_xs_32_fp32.pte", *litert,
        "casvit_xs_32_fp32_opset17.onnx", "casvit_xs_32_fp32_opset17.ort"]
    assert sorted(p.name for p in (exports / "xs_32_fp16").iterdir() if not p.name.endswith(".json")) == [
        "casvit_xs_32_fp16.mlpackage", "casvit_xs_32_fp16_image_imagenet.mlpackage"]


def test_a_failure_gives_the_same_code_and_one_line_for_one_format_or_several(fakes, tmp_path):
    fakes["onnx"].fail = True
    lines = {}
    for formats in ("onnx", "onnx,executorch"):
        result = _casvit("export", "-f", formats, "-r", "32", "-o", str(tmp_path / formats), "--no-check")
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        (lines[formats],) = error_lines(result.stderr)
    assert lines["onnx"] == "error: onnx export failed: RuntimeError: backend exploded"
    assert lines["onnx,executorch"] == "error: 1 of 2 formats failed: onnx export failed: RuntimeError: backend exploded"
    assert (tmp_path / "onnx,executorch" / "casvit_xs_32_fp32.pte").is_file()  # the other format still ran


def test_format_all_leaves_out_a_format_that_cannot_build_the_request(fakes, tmp_path):
    import json

    result = _casvit("export", "-f", "all", "-p", "int8", "-r", "32", "-o", str(tmp_path), "--no-check", "--json", "-")
    assert result.exit_code == 0, result.output
    rows = {r["format"]: r for r in json.loads(result.stdout)["results"]}
    assert rows["ort"]["status"] == "skipped" and "supports precision fp32, not 'int8'" in rows["ort"]["reason"]
    assert [rows[f]["status"] for f in ("onnx", "coreml", "executorch")] == ["ok"] * 3
