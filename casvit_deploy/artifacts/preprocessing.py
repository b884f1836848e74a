"""The evaluation transform, recorded in every manifest and applied by parity to photographs.

Square sizes follow the reference classifier evaluation: below 384 the shorter side is
resized (bicubic, antialiased) to int(size / 0.875) and the centre size x size crop is
taken; from 384 on the image is resized straight to size x size. A non-square size
H x W (dense prediction, or a classifier run off-square) keeps the aspect ratio: the image
is scaled by the smallest factor that makes it cover H x W, and the centre H x W is
cropped, so no crop margin is added and nothing is stretched. Pixels are then scaled to
[0, 1] and normalized with the ImageNet mean and std, channel order RGB, layout NCHW.

Where that normalization happens is part of the record: by the app (a float tensor
input), or inside the model (an image input that takes raw 0-255 pixels). A manifest
of the second kind lists scale, mean and std only under "in_model", so nobody
normalizes twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from casvit_deploy.settings import IMAGENET_MEAN, IMAGENET_STD, Resolution

CROP_PCT = 0.875
SQUARE_RESIZE_FROM = 384  # the reference resizes straight to the input size from here on
# "shorter-side": the shorter side to `resize` (aspect kept), then the centre `crop`;
# "square": straight to `resize` x `resize`; "cover": the smallest scale (aspect kept)
# that covers `crop`, then the centre `crop` (`resize` is None).
RESIZE_MODES = ("shorter-side", "square", "cover")
NORMALIZED_BY = ("app", "model")


@dataclass(frozen=True)
class Preprocessing:
    resize: int | None
    resize_mode: str  # one of RESIZE_MODES
    crop: Resolution
    interpolation: str = "bicubic"
    scale: float = 1 / 255
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color: str = "RGB"
    layout: str = "NCHW"
    in_model: bool = False  # the model normalizes: the app feeds raw pixels

    @classmethod
    def for_resolution(cls, resolution: Resolution | int | str) -> "Preprocessing":
        size = Resolution.parse(resolution)
        if not size.square:
            return cls(None, "cover", size)
        if size.height >= SQUARE_RESIZE_FROM:
            return cls(size.height, "square", size)
        return cls(int(size.height / CROP_PCT), "shorter-side", size)

    @property
    def geometry(self) -> str:
        """The resize and crop, in words."""
        size = f"{self.crop.height}x{self.crop.width}"
        if self.resize_mode == "square":
            return f"resized to {size} ({self.interpolation})"
        if self.resize_mode == "cover":
            return f"scaled to cover {size}, aspect kept ({self.interpolation}), centre {size} crop"
        return f"shorter side resized to {self.resize} ({self.interpolation}), centre {size} crop"

    @property
    def app_feeds(self) -> str:
        """What the app hands the model, in words."""
        if self.in_model:
            return (f"{self.color} image {self.crop.height}x{self.crop.width} ({self.geometry}), "
                    "pixel values 0-255 as they are: "
                    "the model scales and normalizes them itself; do not normalize in the app")
        mean, std = (", ".join(f"{v:g}" for v in values) for values in (self.mean, self.std))
        return (f"float32 {self.layout} tensor, {self.color} ({self.geometry}), pixels scaled to 0-1 "
                f"(x {self.scale:.6g}), minus mean ({mean}), divided by std ({std}), per channel")

    def to_dict(self) -> dict:
        numbers = {"scale": self.scale, "mean": list(self.mean), "std": list(self.std)}
        data = {"resize": self.resize, "resize_mode": self.resize_mode, "crop": self.crop.to_record(),
                "interpolation": self.interpolation, "color": self.color, "layout": self.layout,
                "normalized_by": NORMALIZED_BY[self.in_model], "app_feeds": self.app_feeds}
        return data | ({"in_model": numbers} if self.in_model else numbers)
