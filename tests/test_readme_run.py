"""The README's commands, run as a newcomer would: the blocks marked `<!-- runnable -->` in order
in a fresh folder, and the GitHub Actions job of "Parity: a CI gate". The fast tests run what
needs no export and check what the rest reads; `-m slow` runs every command as written."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from casvit_deploy.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CASVIT = str(Path(sys.executable).with_name("casvit"))


def _lines(block: str) -> list[str]:
    """Shell lines of a block, comments and blank lines dropped."""
    return [line.split(" #")[0].strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


def runnable_commands() -> list[str]:
    blocks = re.findall(r"<!-- runnable -->\n```bash\n(.*?)```", README, re.S)
    assert blocks, "README marks no block <!-- runnable -->"
    return [line for block in blocks for line in _lines(block)]


def ci_commands() -> list[str]:
    block = re.search(r"A GitHub Actions job that gates on it:\n\n```yaml\n(.*?)```", README, re.S)
    assert block, "README no longer has its GitHub Actions job"
    runs = [line.split("- run:", 1)[1] for line in block.group(1).splitlines() if "- run:" in line]
    return [cmd.split(" #")[0].strip() for cmd in runs if "pip install" not in cmd]


def run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """One README line through a shell (globs as in CI), `casvit` being this venv's."""
    argv = shlex.split(command)
    assert argv[0] == "casvit", command
    line = " ".join([shlex.quote(CASVIT)] + [a if "*" in a else shlex.quote(a) for a in argv[1:]])
    return subprocess.run(line, shell=True, cwd=cwd, capture_output=True, text=True, timeout=3600)


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    """A fresh folder with what the README says it holds: the shipped digits checkpoint."""
    (tmp_path / "models").mkdir()
    shutil.copy(ROOT / "models" / "casvit_xs_digits.pth", tmp_path / "models")
    return tmp_path


def test_every_checkpoint_the_readme_passes_is_shipped_or_says_where_it_comes_from():
    explained = {"models/casvit_t.pth": "an official checkpoint, downloaded (see Checkpoints)",
                 "mask_rcnn_casvit_xs.pth": "`mask_rcnn_casvit_xs.pth` stands for your own detection checkpoint"}
    for path in set(re.findall(r"(?:--checkpoint|-c) (\S+\.(?:pth|safetensors))", README)):
        assert (ROOT / path).is_file() or explained.get(path, "\0") in README, f"{path}: neither shipped nor explained"
    assert "github.com/Tianfang-Zhang/CAS-ViT/releases" in README


def test_ci_job_checks_every_file_export_all_writes():
    from casvit_deploy.formats import FORMATS

    export, parity = ci_commands()
    assert "--format all" in export and parity.startswith("casvit parity")
    out = re.search(r"--out (\S+)", export).group(1)
    for fmt in FORMATS.values():
        assert f"{out}/*{fmt.suffix}" in parity, f"the CI job does not check the {fmt.suffix} file"


def test_runnable_block_info_commands_run_as_written_in_a_fresh_folder(fresh: Path, monkeypatch):
    """Fast: the `casvit info` commands that read no export run as written (in process); every
    artifact a later command reads is under models/exports, after an export of the block."""
    monkeypatch.chdir(fresh)
    commands = runnable_commands()
    for i, command in enumerate(commands):
        if re.search(r"models/exports/\S+", command):
            assert any(c.startswith("casvit export") for c in commands[:i]), command
        elif command.startswith("casvit info"):
            result = CliRunner().invoke(app, shlex.split(command)[1:])
            assert result.exit_code == 0 and result.exception is None, f"{command}\n{result.output}"


@pytest.mark.slow
@pytest.mark.timeout(7200)  # every format at 224, parity gates included
def test_runnable_blocks_run_in_order_as_written_in_a_fresh_folder(fresh: Path):
    for command in runnable_commands():
        result = run(command, fresh)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"


@pytest.mark.slow
@pytest.mark.timeout(7200)  # every format at 224, parity gates included
def test_ci_job_runs_as_written(fresh: Path):
    for command in ci_commands():
        result = run(command, fresh)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert "<testsuite" in (fresh / "parity.xml").read_text()
