"""Parity inputs: seeded random batches and real photographs preprocessed as the manifest
records (the reference evaluation transform, artifacts/preprocessing.py)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.errors import UsageError
from casvit_deploy.settings import InputKind, Resolution, choice

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Photographs shipped inside scikit-image's wheel (no download needed).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "camera", "coins", "moon", "grass", "gravel", "brick", "clock", "stereo_motorcycle")


@dataclass
class InputSet:
    """A named batch (N, 3, H, W) float32 and where each sample came from."""

    name: str
    images: np.ndarray
    sources: list[str] = field(default_factory=list)


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic antialiased resize of an (H, W, 3) float image in [0, 1], clamped like uint8."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    out = torch.nn.functional.interpolate(t, size=size, mode="bicubic", antialias=True, align_corners=False)
    return out[0].clamp(0, 1).numpy().transpose(1, 2, 0)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float64 in [0, 1] from gray, RGB, RGBA, bool, uint8/uint16 or float images."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise UsageError(f"image of shape {image.shape} is not gray, RGB or RGBA")
    image = image[..., :3]
    if image.dtype == bool:
        return image.astype(np.float64)
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float64) / np.iinfo(image.dtype).max
    return np.clip(image.astype(np.float64), 0, 1)


def _covering(h: int, w: int, height: int, width: int) -> tuple[int, int]:
    """The size of an h x w image scaled (aspect kept) by the smallest factor that covers
    height x width; for a square target its shorter side becomes the target's side."""
    if height * w >= width * h:  # the height is the tighter side
        return height, max(width, round(w * height / h))
    return max(height, round(h * width / w)), width


def preprocess(image: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """One image -> (3, crop height, crop width) float32, transformed as `pre` records."""
    rgb = as_rgb(image).astype(np.float32)
    h, w = rgb.shape[:2]
    if pre.resize_mode == "square":
        rgb = _resize(rgb, (pre.resize, pre.resize))
    elif pre.resize_mode == "shorter-side":
        rgb = _resize(rgb, _covering(h, w, pre.resize, pre.resize))
    else:  # "cover"
        rgb = _resize(rgb, _covering(h, w, pre.crop.height, pre.crop.width))
    crop_h, crop_w = pre.crop.height, pre.crop.width
    top, left = (rgb.shape[0] - crop_h) // 2, (rgb.shape[1] - crop_w) // 2
    rgb = rgb[top:top + crop_h, left:left + crop_w]
    out = (rgb - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return out.transpose(2, 0, 1).astype(np.float32)


def random_set(resolution: Resolution | int | str, samples: int, seed: int = 0) -> InputSet:
    """`samples` seeded standard-normal images (the scale of normalized photographs)."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal(Resolution.parse(resolution).shape(samples)).astype(np.float32)
    return InputSet("random", images, [f"normal(seed={seed})[{i}]" for i in range(samples)])


def _skimage_photos() -> list[tuple[str, np.ndarray]]:
    import skimage.data

    photos = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in SKIMAGE_PHOTOS:
            data = getattr(skimage.data, name)()
            if isinstance(data, tuple):  # stereo_motorcycle: (left, right, disparity)
                photos += [(f"skimage.data.{name}[{i}]", data[i]) for i in (0, 1)]
            else:
                photos.append((f"skimage.data.{name}", data))
    return photos


def _folder_photos(directory: Path) -> list[tuple[str, np.ndarray]]:
    import skimage.io

    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"--images {directory} is not a folder")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"--images {directory} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    photos = []
    for path in files:
        try:
            photos.append((str(path), skimage.io.imread(path)))
        except Exception as err:
            raise UsageError(f"cannot read image {path}: {str(err).splitlines()[0][:120]}") from None
    return photos


def image_set(pre: Preprocessing, directory: Path | None = None, samples: int | None = None) -> InputSet:
    """Photographs from `directory`, or scikit-image's bundled ones, preprocessed by `pre`."""
    photos = _folder_photos(directory) if directory else _skimage_photos()
    photos = photos[:samples] if samples else photos
    images = np.stack([preprocess(img, pre) for _, img in photos])
    return InputSet("images", images, [name for name, _ in photos])


def build_input_sets(kind: InputKind | str, resolution: Resolution | int | str, samples: int | None = None,
                     images_dir: Path | None = None, seed: int = 0,
                     preprocessing: Preprocessing | None = None) -> list[InputSet]:
    """The input sets for `kind`; photographs preprocessed by `preprocessing` (default: the
    reference transform at `resolution`)."""
    kind = choice(InputKind, kind, "--inputs")
    if samples is not None and samples < 1:
        raise UsageError(f"--samples {samples}: need at least 1")
    sets = []
    if kind in (InputKind.RANDOM, InputKind.BOTH):
        sets.append(random_set(resolution, samples or 4, seed))
    if kind in (InputKind.IMAGES, InputKind.BOTH):
        sets.append(image_set(preprocessing or Preprocessing.for_resolution(resolution), images_dir, samples))
    return sets
