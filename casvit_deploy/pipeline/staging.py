"""Atomic publication: build in a hidden folder inside the output folder, then rename.

An artifact (file or `.mlpackage` folder) and its manifest appear under their final
names only when complete. A failure or interrupt removes the staging folder and leaves
any previous artifact untouched; an existing artifact is replaced only with `force`.

One export at a time writes to a folder (its lock, see locks.py). On taking the lock, an
export first puts right what a killed one left: a publication cut between the artifact
and its manifest is finished, a previous version set aside is put back, staging folders
and temporary files are removed. A failed export removes the output folder it created.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from casvit_deploy import atomic
from casvit_deploy.artifacts.files import artifact_sha256
from casvit_deploy.errors import UsageError
from casvit_deploy.formats import suffixes
from casvit_deploy.locks import folder_lock
from casvit_deploy.store import manifests
from casvit_deploy.store.manifests import SUFFIX, ManifestError, manifest_path

STAGING_PREFIX = ".casvit-staging-"
PROBE_PREFIX = ".casvit-probe-"


def ensure_writable(out_dir: Path) -> Path:
    """Create `out_dir` if needed; UsageError when it cannot be created or written."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output folder {out_dir} is a file; choose a folder with --out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out_dir, prefix=PROBE_PREFIX)
        probe.close()
    except OSError as err:
        raise UsageError(f"output folder {out_dir} is not writable ({err.strerror}); choose another with --out") from None
    return out_dir


def _first_missing(folder: Path) -> Path | None:
    """The outermost of `folder` and its parents that does not exist yet (None: it exists)."""
    missing = None
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing = path
    return missing


def _remove_created(folder: Path, top: Path) -> None:
    """Remove `folder` and its parents up to `top`, as long as each is empty."""
    for path in (folder, *folder.parents):
        try:
            path.rmdir()
        except OSError:
            return
        if path == top:
            return


@contextlib.contextmanager
def output_folder(out_dir: Path) -> Iterator[Path]:
    """`out_dir` created, locked and recovered for one export. A file operation that fails
    inside (e.g. the folder turned read-only) is a one-line UsageError; on any failure the
    folders this call created are removed again when empty."""
    out_dir = Path(out_dir)
    created = _first_missing(out_dir)
    try:
        ensure_writable(out_dir)
        with folder_lock(out_dir):
            recover(out_dir)
            yield out_dir
    except BaseException as err:
        if created is not None:
            _remove_created(out_dir, created)
        if isinstance(err, OSError):
            raise UsageError(f"cannot write to output folder {out_dir} ({err.strerror or err}); "
                             "any previous artifact there is untouched") from None
        raise


def refuse_overwrite(final: Path, force: bool) -> None:
    if (final.exists() or manifest_path(final).exists()) and not force:
        raise UsageError(f"{final} already exists; pass --force to replace it")


@contextlib.contextmanager
def staging_dir(out_dir: Path) -> Iterator[Path]:
    """A fresh hidden folder inside `out_dir`, removed on exit whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def publish(staged: Path, final: Path, force: bool) -> None:
    """Move the staged artifact, then its manifest, to their final names (`recover` finishes
    the second move if the process dies between the two)."""
    refuse_overwrite(final, force)
    atomic.replace(staged, final)
    os.replace(manifest_path(staged), manifest_path(final))


# --- recovery from killed exports ----------------------------------------------------------

def _is_ours(name: str) -> bool:
    """True for the name of an artifact or manifest (what exports and parity write)."""
    return name.endswith(SUFFIX) or name.endswith(suffixes())


def _finish_publication(staging: Path, out_dir: Path) -> None:
    """A staged manifest whose artifact already moved out: move it after its artifact, if
    the published artifact is the one it describes."""
    for staged_manifest in staging.glob(f"*{SUFFIX}"):
        name = staged_manifest.name[: -len(SUFFIX)]
        final = out_dir / name
        if (staging / name).exists() or not final.exists():
            continue
        try:
            manifest = manifests.find(staging / name)
        except ManifestError:
            continue
        if manifest is not None and artifact_sha256(final) == manifest.sha256:
            os.replace(staged_manifest, manifest_path(final))


def recover(out_dir: Path) -> None:
    """Put right what exports killed mid-way left in `out_dir` (call with its lock held:
    then no live process is writing there)."""
    for left in atomic.leftovers(out_dir):
        if not _is_ours(left.target):
            continue
        if left.set_aside:
            previous, final = left.path / left.target, out_dir / left.target
            if previous.exists() and not final.exists():
                os.replace(previous, final)
            shutil.rmtree(left.path, ignore_errors=True)
        else:
            left.path.unlink(missing_ok=True)
    for staging in out_dir.glob(f"{STAGING_PREFIX}*"):
        if staging.is_dir():
            _finish_publication(staging, out_dir)
            shutil.rmtree(staging, ignore_errors=True)
