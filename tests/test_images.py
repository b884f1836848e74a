"""Reading the user's image folders (--calibration, --images): every colour mode to the RGB
Pillow's own conversion gives (16-bit gray scaled, not clipped), regular files only (a FIFO
named a.png is refused at once, not waited on), a pixel limit decided from the header before
anything is decoded (JPEGs reduced while decoding instead), one image held at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.data import images
from casvit_deploy.data.calibration import calibration_set
from casvit_deploy.data.images import as_rgb, read_image
from casvit_deploy.errors import UsageError
from tests.hostile import _png_header

ROOT = Path(__file__).resolve().parents[1]
RGB = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
GRAY16 = np.random.default_rng(1).integers(0, 65536, (6, 8), dtype=np.uint16)


def _channels(rgb: np.ndarray, scale: int = 255) -> np.ndarray:
    """The (3, H, W) float32 in [0, 1] that `as_rgb` must give for an (H, W[, 3]) image."""
    rgb = np.broadcast_to(rgb[..., None], (*rgb.shape, 3)) if rgb.ndim == 2 else rgb
    return (rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(scale)).astype(np.float32)


def _palette(transparency: bool) -> tuple[Image.Image, np.ndarray]:
    """A 16-colour palette image of RGB (colour 0 transparent if asked) and the colours it shows."""
    image = Image.fromarray(RGB).quantize(colors=16, dither=Image.Dither.NONE)
    if transparency:
        image.info["transparency"] = 0
    colours = np.asarray(image.getpalette()[:48], np.uint8).reshape(16, 3)
    return image, colours[np.asarray(image)]


def _cases():
    """mode -> (Pillow image, file suffix, expected (H, W[, 3]) pixels, their white level)."""
    gray = RGB[..., 1]
    (palette, shown), (transparent, shown_too) = _palette(False), _palette(True)
    return {
        "RGB": (Image.fromarray(RGB), ".png", RGB, 255),
        "RGBA": (Image.fromarray(np.dstack([RGB, RGB[..., 0]])), ".png", RGB, 255),
        "CMYK": (Image.fromarray(RGB).convert("CMYK"), ".tif", RGB, 255),  # K = 0: the inversion is exact
        "P": (palette, ".png", shown, 255),
        "P with transparency": (transparent, ".png", shown_too, 255),
        "L": (Image.fromarray(gray), ".png", gray, 255),
        "LA": (Image.fromarray(np.dstack([gray, RGB[..., 2]])), ".png", gray, 255),
        "I;16": (Image.fromarray(GRAY16), ".png", GRAY16, 65535),  # Pillow's RGB conversion clips at 255
        "1": (Image.fromarray(gray > 127), ".png", np.where(gray > 127, 255, 0).astype(np.uint8), 255),
    }


@pytest.mark.parametrize("mode", list(_cases()))
def test_every_mode_reads_as_the_rgb_it_shows(mode, tmp_path):
    image, suffix, expected, white = _cases()[mode]
    path = tmp_path / f"image{suffix}"
    image.save(path)
    assert Image.open(path).mode.split(";")[0] == mode.split()[0].split(";")[0]  # saved in the mode meant
    assert np.array_equal(as_rgb(read_image(path)), _channels(expected, white))


def test_a_cmyk_jpeg_reads_as_its_colours_not_as_rgba(tmp_path):
    y, x = np.mgrid[0:64, 0:96]
    rgb = np.dstack([x * 2.6, y * 4, 255 - x * 2.6]).astype(np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    read = as_rgb(read_image(tmp_path / "cmyk.jpg"))
    truth = _channels(rgb)
    assert np.abs(read - truth).mean() < 0.02
    assert all(np.corrcoef(read[c].ravel(), truth[c].ravel())[0, 1] > 0.99 for c in range(3))


def test_an_image_named_folder_entry_that_is_not_a_regular_file_is_refused_at_once(tmp_path):
    pre = Preprocessing.for_resolution(32)
    Image.fromarray(RGB).save(tmp_path / "0.png")
    os.mkfifo(tmp_path / "a.png")  # no writer: opening it for reading would block forever
    signal.alarm(60)  # a hang fails the test instead of the suite
    try:
        with pytest.raises(UsageError, match="image .*a.png is a FIFO \\(named pipe\\), not a regular file"):
            calibration_set(pre, tmp_path)
    finally:
        signal.alarm(0)
    (tmp_path / "a.png").unlink()
    (tmp_path / "b.jpg").mkdir()
    with pytest.raises(UsageError, match="b.jpg is a folder"):
        calibration_set(pre, tmp_path)
    (tmp_path / "b.jpg").rmdir()
    (tmp_path / "c.png").symlink_to("/dev/zero")
    with pytest.raises(UsageError, match="c.png is a character device"):
        calibration_set(pre, tmp_path)


def test_only_the_images_asked_for_are_read(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "0.png")
    (tmp_path / "1.png").write_bytes(b"")  # never opened with --calibration-samples 1
    found = calibration_set(Preprocessing.for_resolution(32), tmp_path, samples=1)
    assert found.sources == (str(tmp_path / "0.png"),)
    with pytest.raises(UsageError, match="cannot read image .*1.png"):
        calibration_set(Preprocessing.for_resolution(32), tmp_path)


def test_an_image_above_the_pixel_limit_is_refused_from_its_header(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(_png_header(8000, 8000))  # no pixel data: decoding would say "truncated"
    with pytest.raises(UsageError, match="big.png is 8000x8000 pixels, above the 40 megapixels read at most"):
        read_image(path)


def test_a_large_jpeg_is_reduced_while_decoding_other_formats_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 2000)
    y, x = np.mgrid[0:80, 0:120]
    rgb = np.dstack([x * 2, y * 3, x + y]).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "big.jpg", quality=95)
    Image.fromarray(rgb).save(tmp_path / "big.png")
    reduced = read_image(tmp_path / "big.jpg")
    assert reduced.shape == (20, 30, 3)  # 9600 pixels: by 2 still 2400, by 4 within 2000
    assert np.abs(reduced - rgb.reshape(20, 4, 30, 4, 3).mean(axis=(1, 3))).mean() < 3  # 4x4 block means
    with pytest.raises(UsageError, match="big.png is 120x80 pixels"):
        read_image(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 100)  # beyond what reducing by 8 reaches
    with pytest.raises(UsageError, match="big.jpg is 120x80 pixels"):
        read_image(tmp_path / "big.jpg")


PEAK = """
import sys
from pathlib import Path
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.data.calibration import calibration_set
from casvit_deploy.errors import UsageError

def status_kb(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))

pre = Preprocessing.for_resolution(64)
calibration_set(pre, Path(sys.argv[1]))  # imports and a small image first
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak (VmHWM) to the present size: the imports' own peak is not counted
before = status_kb("VmRSS")
try:
    calibration_set(pre, Path(sys.argv[2]))
    outcome = "read"
except UsageError as err:
    outcome = str(err)
print(outcome, (status_kb("VmHWM") - before) / 1024)
"""


def _peak_growth_mb(small: Path, folder: Path) -> tuple[str, float]:
    done = subprocess.run([sys.executable, "-c", PEAK, str(small), str(folder)], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    outcome, growth = done.stdout.rsplit(" ", 1)
    return outcome, float(growth)


@pytest.mark.slow  # writes and decodes images of tens of megapixels; the header test is the fast sibling
def test_peak_memory_of_calibration_is_bounded_whatever_the_images(tmp_path):
    small, bomb, jpeg, largest = (tmp_path / name for name in ("small", "bomb", "jpeg", "largest"))
    for folder in (small, bomb, jpeg, largest):
        folder.mkdir()
    Image.fromarray(RGB).save(small / "a.png")
    Image.new("L", (8000, 8000), 128).save(bomb / "a.png")  # 64 MP in a few hundred kB
    Image.new("RGB", (9000, 6000), (40, 90, 200)).save(jpeg / "a.jpg")  # 54 MP: reduced by 2 while decoding
    side = int(images.MAX_PIXELS ** 0.5)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(largest / "a.png")
    outcome, growth = _peak_growth_mb(small, bomb)
    assert "8000x8000 pixels, above" in outcome and growth < 20, growth  # refused before decoding
    outcome, growth = _peak_growth_mb(small, jpeg)
    assert outcome == "read" and growth < 300, growth  # measured 197 MB
    outcome, growth = _peak_growth_mb(small, largest)
    assert outcome == "read" and growth < 700, growth  # the largest image read: measured 577 MB, 14.4 B a pixel
