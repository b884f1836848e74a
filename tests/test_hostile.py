"""The hostile corpus (tests/hostile.py), case by case: exit code 2 (1 for an artifact
modified after export), exactly one line `error: ...` on stderr, no traceback, no file
written anywhere the case can reach, and the sentinel folder still empty (no code from a
pickle ever ran). Run in-process through the console-script entry point, with file
descriptors 1 and 2 captured (so native output would count too)."""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from casvit_deploy import cli
from tests.fakes import error_lines
from tests.hostile import CASES, Workspace
from tests.privileges import unprivileged


def _tree(*folders: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under `folders`: files with their size and modification time, folders
    as present (a folder made and removed again leaves nothing, only a new mtime)."""
    return {str(p): None if p.is_dir() else (p.lstat().st_size, p.lstat().st_mtime_ns)
            for folder in folders for p in folder.rglob("*")}


def run_casvit(argv: list[str], as_nobody: bool = False) -> int:
    """`casvit ARGV` through the console-script entry point (as `nobody` when root and
    `as_nobody`); its exit code."""
    old = sys.argv
    sys.argv = ["casvit", *argv]
    try:
        with unprivileged(as_nobody):
            cli.run()
        return 0
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    finally:
        sys.argv = old


@pytest.fixture
def workspace(tmp_path, xs_checkpoint, small_artifact):
    public = Path(tempfile.mkdtemp(prefix="casvit-hostile-"))
    public.chmod(0o755)
    (tmp_path / "sentinel").mkdir()
    (tmp_path / "case").mkdir()
    yield Workspace(tmp_path / "case", public, tmp_path / "sentinel", xs_checkpoint, small_artifact)
    shutil.rmtree(public)


def test_the_corpus_covers_every_kind_of_input():
    prefixes = {c.name.split("-")[0] for c in CASES}
    assert {"ckpt", "manifest", "artifact", "parity", "bench", "export", "info"} <= prefixes
    assert len({c.name for c in CASES}) == len(CASES) >= 150
    assert sum(c.exit_code == 1 for c in CASES) >= 6


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case, workspace, tmp_path, monkeypatch, capfd):
    argv = case.build(workspace)
    cwd = tmp_path / "cwd"  # where default output folders (models/...) would appear
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = _tree(tmp_path, workspace.public)
    capfd.readouterr()
    code = run_casvit(argv, case.unprivileged)
    out, err = capfd.readouterr()
    lines = error_lines(err)
    assert "Traceback" not in out + err, err
    assert code == case.exit_code, f"exit {code}: {err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(case.message, lines[0]), lines[0]
    assert _tree(tmp_path, workspace.public) == before, "files were written"
    assert not any(workspace.sentinel.iterdir()), "code from an input ran"


def test_the_readme_states_this_corpus():
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    modified = sum(c.exit_code == 1 for c in CASES)
    assert f"generator of {len(CASES)} hostile inputs" in readme
    assert f"exit 2 (1 for the {modified} modified artifacts)" in readme


REAL_BINARY_SAMPLE = ("ckpt-zip-memo-miss", "ckpt-runs-code-os-system", "ckpt-namespace-positional-args",
                      "ckpt-complex-tensor", "ckpt-input-size-huge", "manifest-preprocessing.resize=6900000",
                      "artifact-pte-bit-flip", "parity-pte-truncated", "bench-onnx-truncated",
                      "bench--plot-in-missing-folder", "export-labels-with-onnx")


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL_BINARY_SAMPLE)
def test_hostile_input_through_the_installed_command(name, workspace, tmp_path):
    """A sample of the corpus through the `casvit` executable itself: what a shell sees."""
    import subprocess

    case = next(c for c in CASES if c.name == name)
    argv = case.build(workspace)
    before = _tree(tmp_path)
    done = subprocess.run([str(Path(sys.executable).parent / "casvit"), *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    lines = error_lines(done.stderr)
    assert done.returncode == case.exit_code and "Traceback" not in done.stderr + done.stdout, done.stderr
    assert len(lines) == 1 and re.search(case.message, lines[0]), done.stderr
    assert _tree(tmp_path) == before and not any(workspace.sentinel.iterdir())
