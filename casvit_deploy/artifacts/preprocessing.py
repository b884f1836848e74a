"""The reference evaluation transform, recorded in every manifest and applied by parity.

Below 384 the shorter side is resized (bicubic, antialiased) to int(resolution / 0.875)
and the centre resolution x resolution crop is taken; from 384 on the image is resized
straight to resolution x resolution. Pixels are then scaled to [0, 1] and normalized
with the ImageNet mean and std, channel order RGB, layout NCHW.

Where that normalization happens is part of the record: by the app (a float tensor
input), or inside the model (an image input that takes raw 0-255 pixels). A manifest
of the second kind lists scale, mean and std only under "in_model", so nobody
normalizes twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from casvit_deploy.model.variants import IMAGENET_MEAN, IMAGENET_STD

CROP_PCT = 0.875
SQUARE_RESIZE_FROM = 384  # the reference resizes straight to the input size from here on
RESIZE_MODES = ("shorter-side", "square")
NORMALIZED_BY = ("app", "model")


@dataclass(frozen=True)
class Preprocessing:
    resize: int
    resize_mode: str  # "shorter-side" then centre crop, or "square" (no crop)
    crop: int
    interpolation: str = "bicubic"
    scale: float = 1 / 255
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color: str = "RGB"
    layout: str = "NCHW"
    in_model: bool = False  # the model normalizes: the app feeds raw pixels

    @classmethod
    def for_resolution(cls, resolution: int) -> "Preprocessing":
        if resolution >= SQUARE_RESIZE_FROM:
            return cls(resolution, "square", resolution)
        return cls(int(resolution / CROP_PCT), "shorter-side", resolution)

    @property
    def geometry(self) -> str:
        """The resize and crop, in words."""
        if self.resize_mode == "square":
            return f"resized to {self.crop}x{self.crop} ({self.interpolation})"
        return (f"shorter side resized to {self.resize} ({self.interpolation}), "
                f"centre {self.crop}x{self.crop} crop")

    @property
    def app_feeds(self) -> str:
        """What the app hands the model, in words."""
        if self.in_model:
            return (f"{self.color} image {self.crop}x{self.crop} ({self.geometry}), pixel values 0-255 as they are: "
                    "the model scales and normalizes them itself; do not normalize in the app")
        mean, std = (", ".join(f"{v:g}" for v in values) for values in (self.mean, self.std))
        return (f"float32 {self.layout} tensor, {self.color} ({self.geometry}), pixels scaled to 0-1 "
                f"(x {self.scale:.6g}), minus mean ({mean}), divided by std ({std}), per channel")

    def to_dict(self) -> dict:
        numbers = {"scale": self.scale, "mean": list(self.mean), "std": list(self.std)}
        data = {"resize": self.resize, "resize_mode": self.resize_mode, "crop": self.crop,
                "interpolation": self.interpolation, "color": self.color, "layout": self.layout,
                "normalized_by": NORMALIZED_BY[self.in_model], "app_feeds": self.app_feeds}
        return data | ({"in_model": numbers} if self.in_model else numbers)
