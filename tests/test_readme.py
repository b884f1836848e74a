"""The README's stated figures come from the code: each is read out of README.md and checked
against `casvit info --json`, a real export's manifest, pyproject and the thresholds, so the
text cannot drift from what the tool does."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from casvit_deploy.cli import app
from casvit_deploy.numerics import DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def stated(pattern: str) -> re.Match:
    found = re.search(pattern, README)
    assert found, f"README no longer states {pattern!r}: update this test with the new wording"
    return found


@pytest.fixture(scope="module")
def xs_facts():
    result = CliRunner().invoke(app, ["info", "-v", "xs", "-r", "64", "--json", "-"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_deploy_form_op_census_is_what_info_reports(xs_facts):
    census = {op: n for op, n in xs_facts["op_census"]["deploy"].items() if n}
    found = stated(r"built only of ([a-z0-9, ]+) and ([a-z0-9]+) \(XS:\s+(\d+) convs, (\d+) linear")
    ops = [op.strip() for op in found.group(1).split(",")] + [found.group(2)]
    assert sorted(ops) == sorted(census)
    assert int(found.group(3)) == census["conv2d"] and int(found.group(4)) == census["linear"]
    assert "batch_norm" not in census and "chunk" not in census


def test_onnx_opsets_are_what_the_options_allow_and_the_manifest_records(tmp_path):
    found = stated(r"`--opset (\d+)\.\.(\d+)` \(default (\d+)\)")
    from casvit_deploy.formats.onnx.options import DEFAULT_OPSET
    from casvit_deploy.formats.onnx.options import OPSETS as ONNX_OPSETS
    from casvit_deploy.model import load_model
    from casvit_deploy.pipeline import export_model

    low, high, default = map(int, found.groups())
    assert (low, high, default) == (min(ONNX_OPSETS), max(ONNX_OPSETS), DEFAULT_OPSET)
    assert list(ONNX_OPSETS) == list(range(low, high + 1))
    manifest = export_model(load_model(None, "xs"), "onnx", tmp_path, resolution=32).manifest
    assert manifest.details.opset == default


def test_python_version_and_extras_are_what_pyproject_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    version = stated(r"Python (3\.\d+)\+").group(1)
    assert project["requires-python"].startswith(f">={version}")
    for extra in re.findall(r"-e '\.\[(\w+)\]'", README):
        assert extra in project["optional-dependencies"], extra
    for extra in re.findall(r"`\[(\w+)\]`", README):
        assert extra in project["optional-dependencies"], extra


def test_threshold_table_and_int8_agreement_limits_are_the_defaults():
    for precision, thresholds in DEFAULTS.items():
        if not thresholds.judges_max_error:  # int8: judged by agreement, stated in prose
            found = stated(r"min cosine ([\d.]+), min SNR ([\d.]+) dB,\s+min top-1 agreement ([\d.]+), "
                           r"min top-5 overlap ([\d.]+), and in the per-block table a block SQNR of at\s+least "
                           r"([\d.]+) dB")
            assert [float(v) for v in found.groups()] == [thresholds.min_cosine, thresholds.min_snr_db,
                                                          thresholds.min_top1, thresholds.min_top5,
                                                          thresholds.block_min_sqnr_db]
            continue
        number = r" ([\d.e+-]+) \|"  # the threshold table's row, not another table's row for the same precision
        row = stated(rf"\| {precision.value} \|" + number * 5)
        values = [float(v.strip()) for v in row.groups()]
        assert values == [thresholds.atol, thresholds.rtol, thresholds.min_cosine, thresholds.min_top1,
                          thresholds.block_rtol]


def test_every_file_the_readme_shows_or_names_in_benchmarks_exists():
    for name in set(re.findall(r"benchmarks/[\w./-]+\.(?:png|json|md)", README)):
        assert (ROOT / name).is_file(), name


def test_the_input_limits_stated_are_the_code_s():
    """Refusal bounds the Guarantees section states, read from where they live."""
    from casvit_deploy.data.images import MAX_PIXELS
    from casvit_deploy.formats.coreml.labels import MAX_LABEL_CHARS
    from casvit_deploy.model.checkpoint import MAX_MAGNITUDE

    assert float(stated(r"a magnitude above (1e\d+)").group(1)) == MAX_MAGNITUDE
    assert int(stated(r"an image above (\d+) megapixels").group(1)) == MAX_PIXELS // 10**6
    assert int(stated(r"a label over (\d+) characters").group(1)) == MAX_LABEL_CHARS
