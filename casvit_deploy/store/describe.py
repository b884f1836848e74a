"""What an exported artifact is, from its manifest and its file: what `casvit info ARTIFACT`
reports (format, interface and what to feed it, preprocessing, precision, target runtime,
size, tool versions, parity status, the latest accuracy on labelled data, and whether the file
still matches its manifest)."""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.artifacts.files import artifact_sha256, artifact_size
from casvit_deploy.artifacts.format import Format
from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.errors import CasvitError
from casvit_deploy.formats import format_for_path
from casvit_deploy.store import manifests


def _target(manifest: Manifest) -> dict:
    """Which runtime versions can load the artifact, as its format knows it (e.g. opset, IR
    version and first ONNX Runtime release; CoreML spec version and deployment target)."""
    return manifest.details.target() | manifest.options.target()


def _quantization(manifest: Manifest) -> dict | None:
    """How a lossy artifact was quantized: what stayed float, its agreement with fp32 and, where
    measured at export, its CPU speed ratio to fp32 and what it is for."""
    record = manifest.quantization
    if record is None:
        return None
    return {"scheme": record.scheme, "kept_float": [k.target for k in record.kept_float],
            "agreement": record.agreement, "cpu_speed": record.cpu_speed_ratio,
            "speed_choice": record.config.get("speed_choice"), "search": _search(record.config)}


def _search(config: dict) -> dict | None:
    """What chose an --auto-keep-float result (cosine, or a top-1 budget on labelled data) and
    the last trial's figures; None when there was no search."""
    if not config.get("auto_keep_float"):
        return None
    last = (config.get("search") or [{}])[-1]
    return {"chosen_by": config.get("chosen_by"), "min_cosine": config.get("min_cosine"),
            "max_top1_drop": config.get("max_top1_drop"), "labelled_data": config.get("labelled_data"),
            "trials": len(config.get("search") or []), "cosine": last.get("cosine"),
            "top1_drop_pp": last.get("top1_drop_pp")}


def _parity(manifest: Manifest, sha256: str) -> dict:
    record = manifest.latest_parity
    if record is None:
        return {"status": "never checked", "checks": 0}
    return {"status": record.status.value, "checked_at": record.checked_at, "reason": record.reason,
            "checked_these_bytes": record.sha256 == sha256, "checks": len(manifest.parity)}


def _evaluation(manifest: Manifest, sha256: str) -> dict | None:
    """The latest `casvit eval` result (None: never evaluated), and whether it measured these bytes."""
    record = manifest.latest_evaluation
    if record is None:
        return None
    return record.to_dict() | {"evaluated_these_bytes": record.sha256 == sha256,
                               "evaluations": len(manifest.evaluations)}


def _model(manifest: Manifest) -> dict:
    checkpoint = None if manifest.checkpoint is None else manifest.checkpoint.to_dict()
    return {"variant": manifest.variant, "num_classes": manifest.num_classes, "weights": manifest.weights,
            "checkpoint": checkpoint, "seed": manifest.seed, "form": manifest.form.value, "passes": manifest.passes}


def _file_facts(fmt: Format, artifact: Path) -> dict | None:
    """What the format reads from the file itself (None: nothing), or why it could not."""
    if fmt.inspect is None:
        return None
    try:
        return fmt.inspect(artifact)
    except CasvitError as err:
        return {"summary": f"unreadable: {err}", "computes": None}


def _without_manifest(artifact: Path, fmt: Format) -> dict:
    """A file with no manifest, described from itself alone (formats with `inspect`)."""
    facts = fmt.inspect(artifact)  # a file it cannot read is a UsageError here: nothing else to say
    return {"artifact": str(artifact), "format": fmt.name, "size_bytes": artifact_size(artifact),
            "sha256": artifact_sha256(artifact), "manifest": None, "file": facts}


def describe_artifact(artifact: Path) -> dict:
    """Everything `casvit info ARTIFACT` reports, as plain data; UsageError/ManifestError for
    a missing artifact, an unknown format or a missing or invalid manifest (a format that
    reads its own files describes one without a manifest from the file alone)."""
    artifact = Path(artifact)
    fmt = format_for_path(artifact)
    if fmt.inspect is not None and manifests.find(artifact) is None:
        return _without_manifest(artifact, fmt)
    manifest = manifests.load(artifact)
    sha256 = artifact_sha256(artifact)
    return {
        "artifact": str(artifact), "format": fmt.name, "size_bytes": artifact_size(artifact),
        "sha256": sha256, "matches_manifest": sha256 == manifest.sha256, "manifest_sha256": manifest.sha256,
        "model": _model(manifest), "precision": manifest.precision.value, "resolution": manifest.resolution,
        "batch": "dynamic" if manifest.dynamic_batch else manifest.batch, "head": manifest.head.value,
        "inputs": [spec.to_dict() for spec in manifest.inputs],
        "outputs": [spec.to_dict() for spec in manifest.outputs],
        "preprocessing": manifest.preprocessing.to_dict(), "target": _target(manifest),
        "mobile_usability": manifest.details.mobile_summary(), "choices": manifest.details.choices(),
        "options": manifest.options.to_record(), "tools": {k: v for k, v in manifest.tools.items() if v},
        "exported_at": manifest.exported_at, "parity": _parity(manifest, sha256),
        "quantization": _quantization(manifest),
        "file": _file_facts(fmt, artifact),
        "evaluation": _evaluation(manifest, sha256),
    }
