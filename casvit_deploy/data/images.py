"""Reading photographs and applying the reference evaluation transform.

`preprocess` takes anything with the fields of `artifacts.preprocessing.Preprocessing`
(resize, resize_mode, crop as a Resolution, mean, std): the transform a manifest records.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from casvit_deploy.errors import BackendMissingError, UsageError, first_line
from casvit_deploy.settings import Resolution

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Photographs shipped inside scikit-image's wheel (no download needed).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "camera", "coins", "moon", "grass", "gravel", "brick", "clock", "stereo_motorcycle")


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


def preprocess(image: np.ndarray, pre) -> np.ndarray:
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


def _skimage():
    """scikit-image (every format extra brings it); BackendMissingError with the remedy otherwise."""
    try:
        import skimage.data
        import skimage.io
    except ModuleNotFoundError:
        raise BackendMissingError("photographs need scikit-image, which is not installed: pip install "
                                  "'casvit-deploy[onnx]' (any format extra) or pip install scikit-image "
                                  "(parity: or use --inputs random)") from None
    return skimage


def bundled_photos() -> list[tuple[str, np.ndarray]]:
    """(name, image) for each photograph bundled with scikit-image."""
    skimage = _skimage()

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


def folder_photos(directory: Path, option: str = "--images") -> list[tuple[str, np.ndarray]]:
    """(path, image) for each image file in `directory`, sorted; UsageError naming `option`."""
    skimage = _skimage()

    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"{option} {directory} is not a folder")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"{option} {directory} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    photos = []
    for path in files:
        try:
            photos.append((str(path), skimage.io.imread(path)))
        except Exception as err:
            raise UsageError(f"cannot read image {path}: {first_line(err, 120)}") from None
    return photos


def photo_batch(pre, directory: Path | None = None, samples: int | None = None,
                option: str = "--images") -> tuple[np.ndarray, list[str]]:
    """(N, 3, crop, crop) float32 photographs from `directory` (default: the bundled ones),
    the first `samples` of them, preprocessed by `pre`; and their names."""
    photos = folder_photos(directory, option) if directory else bundled_photos()
    photos = photos[:samples] if samples else photos
    return np.stack([preprocess(img, pre) for _, img in photos]), [name for name, _ in photos]


def seeded_noise(resolution: Resolution | int | str, samples: int, seed: int = 0) -> np.ndarray:
    """`samples` seeded standard-normal images (N, 3, H, W) float32: the scale of normalized photographs."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(Resolution.parse(resolution).shape(samples)).astype(np.float32)
