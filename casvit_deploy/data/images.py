"""Reading photographs and applying the reference evaluation transform.

A folder's images are read by Pillow one at a time, from regular files only, each converted to
RGB by Pillow's own conversion and refused above MAX_PIXELS (JPEGs are reduced instead).

`preprocess` takes anything with the fields of `artifacts.preprocessing.Preprocessing`
(resize, resize_mode, crop as a Resolution, mean, std): the transform a manifest records.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np

from casvit_deploy.data.files import open_regular
from casvit_deploy.errors import BackendMissingError, UsageError, first_line
from casvit_deploy.settings import Resolution

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# The largest image read: 40 megapixels (7700x5200) covers camera and phone photographs at full size
# and bounds the memory of preprocessing one to about 15 bytes a pixel (600 MB); a JPEG above it is
# reduced while decoding, any other image is refused (see _within_pixel_limit).
MAX_PIXELS = 40_000_000
JPEG_REDUCTIONS = (2, 4, 8)  # the scales a JPEG decoder reduces by (PIL's draft)
NOT_AN_IMAGE = "an image folder may hold only image files: move it out"
PHOTOS_NEED = ("photographs need scikit-image, which is not installed: pip install 'casvit-deploy[onnx]' "
               "(any format extra) or pip install scikit-image (parity: or use --inputs random)")
# Photographs shipped inside scikit-image's wheel (no download needed).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "camera", "coins", "moon", "grass", "gravel", "brick", "clock", "stereo_motorcycle")


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic antialiased resize of a (3, H, W) float32 image in [0, 1], clamped like uint8."""
    import torch

    out = torch.nn.functional.interpolate(torch.from_numpy(image)[None], size=size, mode="bicubic",
                                          antialias=True, align_corners=False)
    return out[0].clamp(0, 1).numpy()


def as_rgb(image: np.ndarray) -> np.ndarray:
    """(3, H, W) float32 in [0, 1] from an (H, W) gray or (H, W, 3 or 4) RGB(A) image, bool,
    uint8/uint16 or float (clipped); alpha is dropped. One float32 copy of the pixels, made
    channels-first while converting (a large photograph is not copied twice)."""
    if image.ndim == 2:
        image = np.broadcast_to(image[..., None], (*image.shape, 3))
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise UsageError(f"image of shape {image.shape} is not gray, RGB or RGBA")
    rgb = np.ascontiguousarray(image[..., :3].transpose(2, 0, 1), dtype=np.float32)
    if np.issubdtype(image.dtype, np.integer):
        rgb /= np.float32(np.iinfo(image.dtype).max)  # the same float32 values as dividing in float64
    elif image.dtype != bool:
        np.clip(rgb, 0, 1, out=rgb)
    return rgb


def _covering(h: int, w: int, height: int, width: int) -> tuple[int, int]:
    """The size of an h x w image scaled (aspect kept) by the smallest factor that covers
    height x width; for a square target its shorter side becomes the target's side."""
    if height * w >= width * h:  # the height is the tighter side
        return height, max(width, round(w * height / h))
    return max(height, round(h * width / w)), width


def preprocess(image: np.ndarray, pre) -> np.ndarray:
    """One image -> (3, crop height, crop width) float32, transformed as `pre` records."""
    rgb = as_rgb(image)
    h, w = rgb.shape[1:]
    if pre.resize_mode == "square":
        rgb = _resize(rgb, (pre.resize, pre.resize))
    elif pre.resize_mode == "shorter-side":
        rgb = _resize(rgb, _covering(h, w, pre.resize, pre.resize))
    else:  # "cover"
        rgb = _resize(rgb, _covering(h, w, pre.crop.height, pre.crop.width))
    crop_h, crop_w = pre.crop.height, pre.crop.width
    top, left = (rgb.shape[1] - crop_h) // 2, (rgb.shape[2] - crop_w) // 2
    rgb = rgb[:, top:top + crop_h, left:left + crop_w]
    channel = (3, 1, 1)
    return (rgb - np.reshape(pre.mean, channel).astype(np.float32)) / np.reshape(pre.std, channel).astype(np.float32)


def _skimage():
    """scikit-image (every format extra brings it); BackendMissingError with the remedy otherwise."""
    try:
        import skimage.data
    except ModuleNotFoundError:
        raise BackendMissingError(PHOTOS_NEED) from None
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


def _too_large(path: Path, size: str) -> UsageError:
    return UsageError(f"image {path} is {size} pixels, above the {MAX_PIXELS // 10**6} megapixels read at most; "
                      "downscale it (images are resized to the model's input anyway)")


def _within_pixel_limit(image, path: Path) -> None:
    """Refuse an image of more than MAX_PIXELS from its header, before anything is decoded;
    a JPEG is first reduced by 2, 4 or 8 while decoding (PIL's draft: the full size is
    never held in memory), so large photographs still read."""
    width, height = image.size
    if width * height <= MAX_PIXELS:
        return
    for factor in JPEG_REDUCTIONS:
        if -(-width // factor) * -(-height // factor) <= MAX_PIXELS:
            image.draft(None, (width // factor, height // factor))  # JPEG only; a no-op for other formats
            break
    if image.size[0] * image.size[1] > MAX_PIXELS:
        raise _too_large(path, f"{width}x{height}")


def _pixels(image) -> np.ndarray:
    """The decoded pixels as `as_rgb` takes them: 16-bit gray (I;16*) as uint16, 32-bit integer
    gray (I: how PIL holds 16-bit data from some files) clipped to 16 bits, 32-bit float gray (F)
    as float32 in [0, 1]; every other mode (CMYK, palette with or without transparency, gray,
    gray + alpha, RGBA, YCbCr, ...) as uint8 RGB by PIL's own conversion, which would clip the
    ones above to 8 bits."""
    if image.mode.startswith("I;16") or image.mode == "F":
        return np.asarray(image)
    if image.mode == "I":
        return np.asarray(image).clip(0, 65535).astype(np.uint16)
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


@contextlib.contextmanager
def _opened(path: Path):
    """The image file at `path` (a regular file, at most MAX_PIXELS, see _within_pixel_limit)
    opened by Pillow, its header read and its pixels not yet decoded; UsageError naming the
    file when it cannot be opened, or when decoding it in the block fails."""
    try:
        from PIL import Image
    except ModuleNotFoundError:
        raise BackendMissingError(PHOTOS_NEED) from None
    with open_regular(path, "image", NOT_AN_IMAGE) as file, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL's size and palette-transparency warnings
        try:
            with Image.open(file) as image:
                _within_pixel_limit(image, path)
                yield image
        except UsageError:
            raise
        except Image.DecompressionBombError:  # PIL's own limit, checked on opening, is far above ours
            raise _too_large(path, "over 100 million") from None
        except Image.UnidentifiedImageError:
            raise UsageError(f"cannot read image {path}: not in an image format Pillow reads") from None
        except Exception as err:  # noqa: BLE001  decoders fail on malformed data in many ways
            raise UsageError(f"cannot read image {path}: {first_line(err, 120)}") from None


def read_image(path: Path) -> np.ndarray:
    """The image file at `path` decoded by Pillow (see _opened)."""
    with _opened(path) as image:
        return _pixels(image)


def _image_files(directory: Path, option: str) -> list[Path]:
    """The files of `directory` named as images, sorted; UsageError naming `option`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"{option} {directory} is not a folder")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"{option} {directory} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def check_folder(directory: Path, option: str, samples: int | None = None) -> None:
    """UsageError, before any work, unless `directory` holds image files and the first
    `samples` of them (default all, sorted) are regular files whose headers Pillow reads and
    that are within the pixel limit (no pixel is decoded: fast, whatever their size)."""
    for path in _image_files(directory, option)[:samples]:
        with _opened(path):
            pass


def folder_photos(directory: Path, option: str = "--images", samples: int | None = None):
    """(path, image) for the first `samples` (default all) image files in `directory`, sorted,
    read one at a time as they are consumed; UsageError naming `option`."""
    for path in _image_files(directory, option)[:samples]:
        yield str(path), read_image(path)


def photo_batch(pre, directory: Path | None = None, samples: int | None = None,
                option: str = "--images") -> tuple[np.ndarray, list[str]]:
    """(N, 3, crop, crop) float32 photographs from `directory` (default: the bundled ones),
    the first `samples` of them, preprocessed by `pre`; and their names. Each image is
    preprocessed as soon as it is read, so at most one is held at full size."""
    photos = folder_photos(directory, option, samples) if directory else bundled_photos()[:samples]
    names, images = [], []
    for name, image in photos:
        names.append(name)
        images.append(preprocess(image, pre))
    return np.stack(images), names


GATE_RANDOM_SAMPLES = 4  # the parity gate's default random input set: this many seeded_noise images, seed 0


def seeded_noise(resolution: Resolution | int | str, samples: int, seed: int = 0) -> np.ndarray:
    """`samples` seeded standard-normal images (N, 3, H, W) float32: the scale of normalized photographs."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(Resolution.parse(resolution).shape(samples)).astype(np.float32)
