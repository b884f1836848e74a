"""Fault injection: an export SIGKILLed at a few moments, then exported again into the same
folder. Until an export completes, the previous good artifact keeps its bytes (or, for a
package caught mid-swap, sits set aside whole and is put back); the next export into the
folder puts right what the dead one left, and nothing stays behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casvit_deploy.artifacts.files import artifact_sha256
from casvit_deploy.errors import UsageError
from casvit_deploy.model import load_model
from casvit_deploy.pipeline import export as api
from casvit_deploy.pipeline import export_model
from casvit_deploy.store import manifests
from casvit_deploy.store.manifests import manifest_path
from tests.fakes import StubExporter

ROOT = Path(__file__).resolve().parents[1]
KILLED = -signal.SIGKILL


def _export(out: Path, fmt: str, payload: bytes, force: bool = False):
    return export_model(load_model(None, "xs"), fmt, out, resolution=32, force=force)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _state(artifact: Path) -> tuple[str | None, str | None]:
    """(sha256 of the artifact, manifest text), None where absent."""
    manifest = manifest_path(artifact)
    return (artifact_sha256(artifact) if artifact.exists() else None,
            manifest.read_text() if manifest.exists() else None)


def _consistent(artifact: Path) -> bool:
    return manifests.load(artifact).sha256 == artifact_sha256(artifact)


@pytest.mark.parametrize("fmt, moment", [("onnx", "exporting"), ("onnx", "checking"), ("onnx", "publishing"),
                                         ("coreml", "swapping")])
def test_sigkill_at_a_moment_then_export_again(fmt, moment, tmp_path, monkeypatch):
    monkeypatch.setattr(api, "exporter_for", lambda _fmt: StubExporter(b"A" * 1000))
    out = tmp_path / "out"
    artifact = _export(out, fmt, b"A").artifact
    good = _state(artifact)

    driver = subprocess.run([sys.executable, "-m", "tests.fault_driver", str(out), fmt, moment, "B" * 900],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert driver.returncode == KILLED, driver.stderr
    assert _hidden(out), "the killed export left nothing to put right"
    if moment in ("exporting", "checking"):
        assert _state(artifact) == good
    elif moment == "swapping":  # the previous package is whole, set aside
        aside = [out / name / artifact.name for name in _hidden(out) if ".old." in name]
        assert not artifact.exists() and len(aside) == 1 and artifact_sha256(aside[0]) == good[0]

    with pytest.raises(UsageError, match="already exists"):  # recovers, then refuses to overwrite
        _export(out, fmt, b"C")
    assert _hidden(out) == []
    if moment == "publishing":  # the artifact had been published: its manifest follows it
        assert artifact_sha256(artifact) != good[0] and _consistent(artifact)
    else:
        assert _state(artifact) == good

    monkeypatch.setattr(api, "exporter_for", lambda _fmt: StubExporter(b"C" * 800))
    replaced = _export(out, fmt, b"C", force=True).artifact
    assert _hidden(out) == [] and _consistent(replaced) and _state(replaced)[0] != good[0]
    assert sorted(p.name for p in out.iterdir()) == sorted([artifact.name, manifest_path(artifact).name])


def _kill_when(process: subprocess.Popen, ready, timeout_s: float = 600) -> None:
    """SIGKILL `process` (and its children) as soon as `ready()` holds."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert process.poll() is None, "the export finished before the moment came"
        assert time.monotonic() < deadline, "the moment never came"
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _staged(out: Path, pattern: str) -> bool:
    return any(any(s.glob(pattern)) for s in out.glob(".casvit-staging-*"))


MOMENTS = {  # what the real CLI is doing when the file appears
    "staging": lambda out: any(out.glob(".casvit-staging-*")),
    "exporter-wrote": lambda out: _staged(out, "*.onnx"),
    "post-export-check": lambda out: _staged(out, "*.manifest.json"),
}


@pytest.mark.slow
def test_real_export_sigkilled_then_exported_again(tmp_path, xs_checkpoint):
    """The `casvit export` command itself, killed at three moments (found by watching the folder)."""
    out = tmp_path / "out"
    artifact = export_model(load_model(None, "xs"), "onnx", out, resolution=32).artifact
    good = _state(artifact)
    command = [str(Path(sys.executable).parent / "casvit"), "export", "-f", "onnx", "-r", "32", "-o", str(out),
               "--force", "-c", str(xs_checkpoint)]
    for name, ready in MOMENTS.items():
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        _kill_when(process, lambda: ready(out))
        assert _state(artifact) == good, f"killed at {name}: the previous artifact changed"
    assert _hidden(out)
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert _hidden(out) == [] and _consistent(artifact) and _state(artifact)[0] != good[0]
    assert manifests.load(artifact).latest_parity.status == "pass"
