"""The reference evaluation transform, recorded in every manifest and applied by parity.

Below 384 the shorter side is resized (bicubic, antialiased) to int(resolution / 0.875)
and the centre resolution x resolution crop is taken; from 384 on the image is resized
straight to resolution x resolution. Pixels are then scaled to [0, 1] and normalized
with the ImageNet mean and std, channel order RGB, layout NCHW.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from casvit_deploy.model.variants import IMAGENET_MEAN, IMAGENET_STD

CROP_PCT = 0.875
SQUARE_RESIZE_FROM = 384  # the reference resizes straight to the input size from here on
RESIZE_MODES = ("shorter-side", "square")


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

    @classmethod
    def for_resolution(cls, resolution: int) -> "Preprocessing":
        if resolution >= SQUARE_RESIZE_FROM:
            return cls(resolution, "square", resolution)
        return cls(int(resolution / CROP_PCT), "shorter-side", resolution)

    def to_dict(self) -> dict:
        data = asdict(self)
        return data | {"mean": list(self.mean), "std": list(self.std)}
