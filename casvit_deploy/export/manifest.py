"""The JSON manifest written next to every artifact, and reading it back."""

from __future__ import annotations

import hashlib
import time
from importlib import metadata
from pathlib import Path

from casvit_deploy.model import IMAGENET_MEAN, IMAGENET_STD
from casvit_deploy.manifests import manifest_path, read_manifest, write_json_atomic

TOOLS = ("torch", "onnx", "onnxruntime", "onnxscript", "coremltools", "executorch", "casvit-deploy")
CROP_PCT = 0.875  # the reference eval transform: resize to size/0.875, centre-crop size
NO_CROP_FROM = 384  # from 384 on the reference resizes straight to the input size


def tool_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape an artifact (None when absent)."""
    found = {}
    for name in TOOLS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def sha256_tree(path: Path) -> str:
    """sha256 of a file, or of a directory as its sorted relative paths and contents."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def preprocessing(resolution: int) -> dict:
    """The reference evaluation transform that an app must apply before the model."""
    resize = resolution if resolution >= NO_CROP_FROM else int(resolution / CROP_PCT)
    return {"resize": resize, "crop": resolution, "interpolation": "bicubic", "scale": 1 / 255,
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "color": "RGB", "layout": "NCHW"}


def weights_record(loaded) -> dict:
    """Where the weights came from, with what parity needs to rebuild the same model."""
    ckpt = loaded.checkpoint
    return {
        "weights": loaded.weights,
        "checkpoint": {"path": ckpt.path, "sha256": ckpt.sha256, "used_ema": ckpt.used_ema} if ckpt else None,
        "checkpoint_sha256": loaded.checkpoint_sha256,
        "seed": None if ckpt else loaded.seed,
        "ema": bool(ckpt and ckpt.used_ema),
        "distillation": bool(ckpt.distillation) if ckpt else getattr(loaded.model, "dist_head", None) is not None,
    }


def build_manifest(loaded, job, output, artifact: Path, passes: list[str], rewrite: bool,
                   blocks: dict[str, str], seconds: float) -> dict:
    """Every fact about one finished artifact (at `artifact`, its final or staged path)."""
    return {
        "format": output.fields.get("format"),
        "file": artifact.name,
        "size_bytes": size_bytes(artifact),
        "sha256": sha256_tree(artifact),
        "inputs": output.inputs,
        "outputs": output.outputs,
        "preprocessing": preprocessing(job.resolution),
        "variant": loaded.variant,
        "num_classes": loaded.num_classes,
        **weights_record(loaded),
        "rewrite": rewrite,
        "passes": passes,
        "precision": job.precision,
        "resolution": job.resolution,
        "batch": job.batch,
        "dynamic_batch": job.dynamic_batch,
        **{k: v for k, v in output.fields.items() if k != "format"},
        "tools": tool_versions(),
        "export_seconds": round(seconds, 3),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "block_outputs": blocks,
        "parity": None,
    }


def update_manifest(artifact: Path, **entries) -> dict:
    """Set top-level `entries` in the manifest of `artifact`, atomically; the new manifest."""
    manifest = {**read_manifest(artifact), **entries}
    write_json_atomic(manifest_path(Path(artifact)), manifest)
    return manifest


