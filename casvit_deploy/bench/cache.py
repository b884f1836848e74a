"""Export cache: artifacts keyed by what determines their contents, so repeated runs reuse them.

An artifact `casvit export` already made under models/exports is used first when its
manifest matches the case (weights, variant, resolution, precision, fixed batch, format,
form, passes, options, tool versions) and its bytes are those the manifest records.

Key: checkpoint sha256 (or the random-weights seed), variant, resolution, precision,
batch, format, form, the rewrite passes applied, exporter options, and a fingerprint of the code
that shapes an artifact (model, rewrite and export sources, backend versions), so a changed
exporter never serves a stale artifact. The folder name starts with a readable summary and
ends with a hash of the full key.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from casvit_deploy.artifacts.files import artifact_sha256
from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.artifacts.options import to_record
from casvit_deploy.errors import CasvitError
from casvit_deploy.formats import FORMATS, suffixes
from casvit_deploy.paths import CACHE, EXPORTS
from casvit_deploy.pipeline import export_model
from casvit_deploy.pipeline.record import tool_versions
from casvit_deploy.rewrite import PASS_NAMES
from casvit_deploy.settings import Form, Resolution
from casvit_deploy.store import manifests
from casvit_deploy.store.manifests import manifest_path

SHAPING_PACKAGES = ("model", "rewrite", "export", "artifacts", "quantize", "data", "formats", "pipeline")


@functools.lru_cache(maxsize=1)
def exporter_fingerprint() -> str:
    """A digest of the sources and tool versions that determine an exported artifact."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(json.dumps(tool_versions(), sort_keys=True, default=str).encode())
    for package in SHAPING_PACKAGES:
        for source in sorted((root / package).rglob("*.py")):
            digest.update(source.relative_to(root).as_posix().encode() + source.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ExportKey:
    weights: str  # "sha256:<hex>" or "seed:<n>"
    variant: str
    resolution: Resolution
    precision: str
    batch: int
    fmt: str
    form: str
    passes: tuple[str, ...]
    options: object  # the format's options dataclass
    code: str = field(default_factory=exporter_fingerprint)

    def folder(self) -> str:
        data = self.__dict__ | {"options": to_record(self.options), "resolution": str(self.resolution)}
        digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=list).encode()).hexdigest()
        return f"{self.variant}_{self.resolution}_{self.precision}_b{self.batch}_{self.form}_{self.fmt}-{digest[:12]}"


def find_artifact(folder: Path) -> Path | None:
    """The complete artifact in `folder` (one whose manifest is present), if any."""
    if not folder.is_dir():
        return None
    for path in sorted(folder.iterdir()):
        if path.suffix in suffixes() and manifest_path(path).is_file():
            return path
    return None


def _manifest_weights(manifest: Manifest) -> str:
    return f"sha256:{manifest.checkpoint.sha256}" if manifest.checkpoint else f"seed:{manifest.seed}"


def matches(manifest: Manifest, key: ExportKey, loaded) -> bool:
    """Whether an exported artifact's manifest describes exactly the artifact `key` asks for."""
    used_ema = bool(manifest.checkpoint and manifest.checkpoint.used_ema)
    return (_manifest_weights(manifest) == key.weights
            and used_ema == bool(loaded.checkpoint and loaded.checkpoint.used_ema)
            and (manifest.format, manifest.variant, manifest.resolution, manifest.precision.value, manifest.batch,
                 manifest.form.value, tuple(manifest.passes))
            == (key.fmt, key.variant, key.resolution, key.precision, key.batch, key.form, key.passes)
            and not manifest.dynamic_batch and to_record(manifest.options) == to_record(key.options)
            and manifest.tools == tool_versions())


def exported_match(loaded, key: ExportKey, exports: Path = EXPORTS) -> Path | None:
    """An artifact under `exports` (one folder deep) that `casvit export` made for `key`, unmodified."""
    suffix = FORMATS[key.fmt].suffix
    for path in sorted(Path(exports).glob(f"*/*{suffix}")):
        try:
            manifest = manifests.load(path)
        except CasvitError:
            continue
        if matches(manifest, key, loaded) and artifact_sha256(path) == manifest.sha256:
            return path
    return None


def cached_export(loaded, key: ExportKey, root: Path = CACHE, progress=None, exports: Path = EXPORTS):
    """(artifact, export seconds or None when none was needed) for `key`.

    Uses a matching artifact under `exports`, else the cache's; exports with
    `casvit_deploy.export.export_model` into `root/<key folder>` on a miss (the exporter
    writes atomically, so a folder never holds half an artifact).
    """
    folder = Path(root) / key.folder()
    hit = exported_match(loaded, key, exports) or find_artifact(folder)
    if hit is not None:
        return hit, None
    result = export_model(loaded, FORMATS[key.fmt], folder, resolution=key.resolution, batch=key.batch,
                          precision=key.precision, form=Form(key.form), disable=_disabled(key.form, key.passes),
                          force=True, options=key.options, progress=progress)
    return Path(result.artifact), result.seconds


def _disabled(form: str, passes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(p for p in PASS_NAMES if p not in passes) if form == Form.DEPLOY.value else ()


def weights_key(loaded) -> str:
    """The checkpoint's sha256, or the random-weights seed (and form: classifier or backbone)."""
    if loaded.checkpoint_sha256:
        return f"sha256:{loaded.checkpoint_sha256}"
    return f"seed:{loaded.seed}" + (":backbone" if loaded.is_backbone else "")
