"""Default folders, relative to the working directory (the model store of the README)."""

from pathlib import Path

MODELS = Path("models")
EXPORTS = MODELS / "exports"  # `casvit export` without --out
CACHE = MODELS / "cache"      # exports made by `casvit bench`, reused between runs
