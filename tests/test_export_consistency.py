"""Faults leave a consistent store: one export at a time per folder, leftovers of dead
exports put right, no empty folder from a failed export, a folder turned read-only
mid-export is one line and exit 2, and an interrupt during the post-export check leaves
the previous artifact. A stub exporter stands in for the backends."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from casvit_deploy.artifacts.files import artifact_sha256
from casvit_deploy.errors import ExportError, UsageError
from casvit_deploy.locks import FolderBusy, folder_lock
from casvit_deploy.model import load_model
from casvit_deploy.parity import check_artifact
from casvit_deploy.pipeline import export as api
from casvit_deploy.pipeline import export_model
from casvit_deploy.pipeline import shipping as export_command
from casvit_deploy.store import manifests
from casvit_deploy.store.manifests import manifest_path
from tests.fakes import StubExporter, error_lines
from tests.privileges import privileged, public_folder, unprivileged
from tests.test_hostile import run_casvit

HOLD_LOCK = ("import sys, time\nfrom casvit_deploy.locks import folder_lock\n"
             "with folder_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)\n")


@pytest.fixture
def stub(monkeypatch):
    exporter = StubExporter(b"first")
    monkeypatch.setattr(api, "exporter_for", lambda fmt: exporter)
    return exporter


def _export(out, fmt="onnx", **kwargs):
    return export_model(load_model(None, "xs"), fmt, out, resolution=32, **kwargs)


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def lock_holder(tmp_path):
    """Another process holding the lock of tmp_path/out."""
    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield out
    process.kill()
    process.wait()


def test_a_second_export_into_a_busy_folder_is_refused(stub, lock_holder, capfd):
    with pytest.raises(FolderBusy, match="in use by another casvit process"):
        _export(lock_holder, force=True)
    assert list(lock_holder.iterdir()) == []
    capfd.readouterr()
    assert run_casvit(["export", "-f", "onnx", "-r", "32", "-o", str(lock_holder), "--force"]) == 2
    err = error_lines(capfd.readouterr().err)
    assert len(err) == 1 and "in use by another casvit process" in err[0]


def test_the_lock_is_reentrant_and_released(stub, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with folder_lock(out):
        _export(out)  # the export takes the lock this process holds
    with folder_lock(out):
        pass


def test_a_parity_result_waits_for_a_busy_folder_then_is_not_recorded(small_artifact, tmp_path, monkeypatch):
    artifact = small_artifact("onnx")
    folder = tmp_path / "out"
    shutil.copytree(artifact.parent, folder)
    copy = folder / artifact.name
    monkeypatch.setattr(manifests, "RECORD_LOCK_WAIT_S", 0.3)
    process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        report = check_artifact(copy, inputs="random", samples=1)
    finally:
        process.kill()
        process.wait()
    assert report.passed and any("not recorded" in n and "in use" in n for n in report.notes)
    assert manifests.load(copy).parity == []


def test_leftovers_of_dead_exports_are_put_right(stub, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".casvit-staging-dead0001").mkdir()
    (out / ".casvit-staging-dead0001" / "casvit_xs_32_fp32.onnx").write_bytes(b"\0" * 4096)
    (out / ".casvit_xs_32_fp32.onnx.manifest.json.abcd1234.tmp.json").write_text("{")
    previous = out / ".casvit_xs_32_fp16.mlpackage.old.abcd1234" / "casvit_xs_32_fp16.mlpackage"
    previous.mkdir(parents=True)
    (previous / "weight.bin").write_bytes(b"previous package")
    (out / ".notes").write_text("a user's file")
    (out / ".report.json.abcd1234.tmp.json").write_text("not ours")
    _export(out)
    assert _hidden(out) == [".notes", ".report.json.abcd1234.tmp.json"]
    assert (out / "casvit_xs_32_fp16.mlpackage" / "weight.bin").read_bytes() == b"previous package"


def test_temporary_files_of_the_backends_are_made_in_the_staging_folder(stub, tmp_path):
    """What `tempfile` would create in the system temp folder inside `temp_files_in` (the
    backends' own temporary files) is made in the staging folder, which a finished export
    removes and the next export clears after a SIGKILL; the system's folder is back after."""
    import tempfile

    from casvit_deploy.atomic import temp_files_in

    made = []

    def during(job):
        with temp_files_in(job.artifact.parent):
            made.append(Path(tempfile.mkdtemp(prefix="backend-")))

    stub.during, before = during, tempfile.tempdir
    _export(tmp_path / "out")
    assert made[0].parent.parent == tmp_path / "out" and made[0].parent.name.startswith(".casvit-staging-")
    assert not made[0].exists() and tempfile.tempdir == before
    with pytest.raises(RuntimeError), temp_files_in(tmp_path):
        raise RuntimeError
    assert tempfile.tempdir == before


@pytest.mark.parametrize("existed", [False, True])
def test_a_failed_export_leaves_no_folder_it_created(stub, tmp_path, existed):
    out = tmp_path / "a" / "b" / "out"
    if existed:
        out.mkdir(parents=True)
    stub.fail = True
    with pytest.raises(ExportError, match="backend exploded"):
        _export(out)
    assert out.is_dir() == existed and (tmp_path / "a").exists() == existed
    assert not existed or list(out.iterdir()) == []


def test_folder_made_read_only_mid_export_is_one_line_and_keeps_the_previous_artifact(stub, capfd):
    root = public_folder()
    try:
        out = root / "out"
        artifact = _export(out).artifact
        out.chmod(0o777)
        before = artifact.read_bytes(), manifest_path(artifact).read_text()

        def read_only(job):
            with privileged():
                out.chmod(0o555)

        stub.payload, stub.during = b"second", read_only
        with unprivileged():
            with pytest.raises(UsageError, match=r"cannot write to output folder .*\(Permission denied\)"):
                _export(out, force=True)
        assert (artifact.read_bytes(), manifest_path(artifact).read_text()) == before
        out.chmod(0o755)
        stub.during = None
        replaced = _export(out, force=True).artifact  # and the next export puts the folder right
        assert replaced.read_bytes() == b"second" and _hidden(out) == []
    finally:
        shutil.rmtree(root)


def test_interrupt_during_the_post_export_check_keeps_the_previous_artifact(stub, tmp_path, monkeypatch, capfd):
    out = tmp_path / "out"
    args = ["export", "-f", "onnx", "-r", "32", "-o", str(out)]
    assert run_casvit(args) == 0
    artifact = out / "casvit_xs_32_fp32.onnx"
    before = artifact_sha256(artifact), manifest_path(artifact).read_text()

    def interrupted(*_args):
        raise KeyboardInterrupt

    stub.payload = b"second"
    monkeypatch.setattr(export_command, "parity_gate", lambda _loaded, _check=True, _progress=None: interrupted)
    capfd.readouterr()
    assert run_casvit([*args, "--force"]) == 130  # Typer's exit code for Ctrl-C
    assert error_lines(capfd.readouterr().err) == ["interrupted"]
    assert (artifact_sha256(artifact), manifest_path(artifact).read_text()) == before
    assert _hidden(out) == []


def test_sigint_exits_130_with_one_line_and_leaves_nothing(tmp_path):
    """A real Ctrl-C (SIGINT) during a real export: exit 130, `interrupted` on stderr, no
    traceback, no output folder and nothing in the system temp folder."""
    import os
    import signal

    temp = tmp_path / "temp"
    temp.mkdir()
    casvit = Path(sys.executable).parent / "casvit"
    process = subprocess.Popen([str(casvit), "export", "-f", "onnx", "-r", "32", "-o", str(tmp_path / "out")],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               env=os.environ | {"TMPDIR": str(temp)},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    for line in process.stderr:  # progress lines, one per stage
        lines.append(line.rstrip("\n"))
        if line.rstrip().endswith("onnx: export"):
            process.send_signal(signal.SIGINT)
            break
    lines += process.stderr.read().splitlines()
    assert process.wait(timeout=300) == 130, lines
    assert error_lines("\n".join(lines)) == ["interrupted"], lines
    assert not (tmp_path / "out").exists() and list(temp.iterdir()) == []


@pytest.mark.parametrize("check, reason", [("--check", "cannot load"), ("--no-check", "--no-check")])
def test_every_published_manifest_says_what_happened_to_its_check(stub, tmp_path, check, reason):
    out = tmp_path / "out"
    assert run_casvit(["export", "-f", "onnx", "-r", "32", "-o", str(out), check]) == 0
    record = manifests.load(out / "casvit_xs_32_fp32.onnx").latest_parity
    assert record.status == "not run" and reason in record.reason  # the stub's bytes are no ONNX model
    assert record.sha256 == manifests.load(out / "casvit_xs_32_fp32.onnx").sha256
