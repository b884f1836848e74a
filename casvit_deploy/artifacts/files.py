"""Facts about an artifact on disk: its sha256 and size (a file, or a folder such as .mlpackage)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def artifact_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder as its sorted relative paths and contents."""
    path = Path(path)
    digest = hashlib.sha256()
    for file in _files(path):
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def artifact_size(path: Path) -> int:
    """Bytes on disk: the file, or every file in the folder."""
    return sum(p.stat().st_size for p in _files(Path(path)))
