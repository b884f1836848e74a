"""Output read in a CI log (not a terminal, 80 columns): every table prints whole, one
record per line; long work reports one progress line per stage; backend noise stays out."""

from __future__ import annotations

import importlib.util
import json
import logging

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from casvit_deploy.cli import app
from casvit_deploy.commands.render import Status, records, show
from casvit_deploy.quiet import quiet_third_party

LOG = {"COLUMNS": "80"}  # CliRunner's stdout and stderr are not terminals


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env=LOG)


def assert_whole(text: str) -> None:
    assert "…" not in text and "│" not in text, text


def test_records_keep_every_cell_whole_in_80_columns(capsys):
    table = Table(title="report", caption="machine: a very long description " * 4)
    for name in ("file", "max abs", "status"):
        table.add_column(name)
    name = "casvit_xs_224_fp32_with_a_rather_long_name.onnx"
    table.add_row(name, "7.391234e-06", "[red]fail[/]")
    table.add_row("b.onnx", "–", "pass")
    show(Console(width=80, force_terminal=False), table)
    out = capsys.readouterr().out
    assert_whole(out)
    assert out.splitlines()[1] == f"  file: {name} | max abs: 7.391234e-06 | status: fail"
    assert out.splitlines()[2] == "  file: b.onnx | status: pass"  # an empty cell is left out
    assert "machine: a very long description machine:" in out


def test_key_value_tables_print_key_colon_value():
    table = Table(show_header=False)
    table.add_column()
    table.add_column()
    table.add_row("weights", "random weights, not pretrained")
    assert records(table) == ["weights: random weights, not pretrained"]


def test_a_terminal_still_gets_the_drawn_table(capsys):
    table = Table(title="t")
    table.add_column("a")
    table.add_row("1")
    show(Console(width=80, force_terminal=True), table)
    assert "┏" in capsys.readouterr().out


def test_status_writes_one_line_per_stage_with_seconds(capsys):
    with Status() as status:
        status.update("onnx: export")
        status.update("onnx: [bold]lower[/]")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0].endswith("s] onnx: export") and lines[1].endswith("s] onnx: lower")


def test_info_in_a_log_is_whole():
    result = invoke("info", "-r", "64")
    assert result.exit_code == 0, result.output
    assert_whole(result.stdout)
    facts = json.loads(invoke("info", "-r", "64", "--json", "-").stdout)
    conv = facts["op_census"]["deploy"]["conv2d"]
    assert f"op: conv2d | upstream: {facts['op_census']['upstream']['conv2d']} | deploy: {conv}" in result.stdout
    for p in facts["passes"]:
        assert p["identity"] in result.stdout


def test_info_on_an_artifact_in_a_log_is_whole(tmp_path):
    from casvit_deploy.model import load_model
    from casvit_deploy.pipeline import export_model

    artifact = export_model(load_model(None, "xs"), "onnx", tmp_path / "a_long_folder_name_for_eighty_columns",
                            resolution=32).artifact
    result = invoke("info", artifact)
    assert result.exit_code == 0, result.output
    assert_whole(result.stdout)
    facts = json.loads(invoke("info", artifact, "--json", "-").stdout)
    assert f"matches manifest: yes (sha256 {facts['sha256'][:16]}...)" in result.stdout
    assert f"tools: {', '.join(f'{k} {v}' for k, v in facts['tools'].items())}" in result.stdout


def test_bench_in_a_log_is_whole_with_case_progress(tmp_path):
    report = tmp_path / "bench.json"
    result = invoke("bench", "-b", "eager", "-r", "64", "--iters", "2", "--warmup", "0", "--threads", "1",
                    "--rounds", "2", "--json", report)
    assert result.exit_code == 0, result.output
    assert_whole(result.stdout)
    for row in json.loads(report.read_text())["results"]:
        assert f"p50 ms: {row['p50_ms']:.2f}" in result.stdout
    progress = [line for line in result.stderr.splitlines() if "case " in line]
    assert [p.split("] ", 1)[1].split(":")[0] for p in progress] == ["case 1 of 2", "case 2 of 2"]
    assert result.stderr.strip() and "\n\n" not in result.stderr and not result.stderr.startswith("\n")


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_torchvision_warnings_of_onnx_export_stay_hidden(capfd, monkeypatch):
    """torch resets its loggers' levels during export; the warnings must stay hidden anyway,
    and show with CASVIT_DEBUG=1."""
    from torch._logging._internal import _init_logs
    from torch.onnx._internal.exporter._registration import _get_overload

    with quiet_third_party():
        _init_logs()  # what torch does mid-export
        _get_overload("torchvision::nms")
    assert "torchvision" not in capfd.readouterr().err
    monkeypatch.setenv("CASVIT_DEBUG", "1")
    with quiet_third_party():
        _get_overload("torchvision::nms")
    assert "torchvision is not installed" in capfd.readouterr().err
    assert logging.root.manager.disable == logging.NOTSET


def test_executorch_threadpool_probe_writes_nothing_to_stderr():
    """ExecuTorch's CPU probing prints to file descriptor 2 when its threadpool starts (bench)."""
    import subprocess
    import sys

    pytest.importorskip("executorch")
    code = ("from casvit_deploy.bench.backends import known_backends\n"
            "from casvit_deploy.bench.process import process_settings\n"
            "with process_settings(2, [known_backends()['executorch']]):\n    pass\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr
