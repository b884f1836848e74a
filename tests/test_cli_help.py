"""`--help` in a pipe or a CI log (not a terminal, 80 columns): every command's help is whole,
no line past 80 columns, no option name or word of a description cut or split."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from casvit_deploy.cli import app

GROUP = typer.main.get_command(app)
COMMANDS = sorted(GROUP.commands)


def _help(*argv: str) -> str:
    result = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.stdout


def _words(text: str) -> str:
    return " ".join(text.split())


def test_every_command_is_listed_with_its_first_sentence_whole():
    text = _help()
    assert max(map(len, text.splitlines())) <= 80
    for name in COMMANDS:
        first = GROUP.commands[name].get_short_help_str(limit=10**4)
        assert not first.endswith("...") and first in _words(text), name


@pytest.mark.parametrize("name", COMMANDS)
def test_help_is_whole_in_80_columns(name):
    command = GROUP.commands[name]
    text = _help(name)
    assert "│" not in text and "…" not in text
    assert max(map(len, text.splitlines())) <= 80, text
    flat = _words(text)
    for param in command.params:
        for flag in [*param.opts, *param.secondary_opts]:
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), flag
        if getattr(param, "help", None):
            assert _words(param.help) in flat, param.help


def test_help_through_a_pipe_as_a_shell_sees_it():
    """The installed command, its stdout a pipe and no COLUMNS set: the issue's case."""
    casvit = Path(sys.executable).parent / "casvit"
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(casvit), "export", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert max(map(len, done.stdout.splitlines())) <= 80
    for flag in ("--deployment-target", "--calibration-samples", "--calibration-method", "--quantize-residual",
                 "--auto-keep-float"):
        assert re.search(rf"^  {flag} ", done.stdout, re.M), flag


def test_keep_float_help_names_every_op_kind():
    """The --keep-float help lists every op kind the flag accepts (quantize/targets.py)."""
    from casvit_deploy.quantize.targets import KINDS

    help_text = next(p.help for p in GROUP.commands["export"].params if "--keep-float" in p.opts)
    for kind in KINDS:
        assert re.search(rf"(?<![\w-]){re.escape(kind)}(?![\w-])", help_text), kind
