"""A fifth format added from inside a test, as one folder and one record (tests/toy_format/),
touching no file of the package: export, parity, info and bench all work on it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from casvit_deploy.cli import app
from casvit_deploy.formats import FORMATS, register, unregister
from tests.toy_format import FORMAT

runner = CliRunner()


def casvit(*args):
    return runner.invoke(app, list(map(str, args)), env={"COLUMNS": "200"})


@pytest.fixture
def toy():
    register(FORMAT)
    yield FORMAT
    unregister(FORMAT.name)


def test_a_registered_format_exports_checks_describes_and_benchmarks(toy, tmp_path):
    exported = casvit("export", "-f", "toy", "-r", "32", "-o", tmp_path, "--json", "-")
    assert exported.exit_code == 0, exported.output
    (row,) = json.loads(exported.stdout)["results"]
    assert (row["format"], row["status"], row["parity"]) == ("toy", "ok", "pass")
    artifact = tmp_path / "casvit_xs_32_fp32.toy"
    assert artifact.is_file()

    parity = casvit("parity", artifact, "--json", "-")
    assert parity.exit_code == 0, parity.output
    assert json.loads(parity.stdout)["reports"][0]["format"] == "toy"

    info = json.loads(casvit("info", artifact, "--json", "-").stdout)
    assert info["format"] == "toy" and info["parity"]["status"] == "pass" and info["matches_manifest"]

    bench = casvit("bench", artifact, "--iters", "2", "--warmup", "1", "--rounds", "1", "--no-baseline",
                   "--json", "-")
    assert bench.exit_code == 0, bench.output
    assert [r["backend"] for r in json.loads(bench.stdout)["results"]] == ["toy"]


def test_the_record_is_refused_twice_and_leaves_the_table_as_it_was(toy):
    from casvit_deploy.errors import UsageError

    with pytest.raises(UsageError, match="clashes"):
        register(toy)
    assert list(FORMATS)[-1] == "toy"
