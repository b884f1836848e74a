"""The evaluation transform, recorded in every manifest and applied by parity to photographs.

Square sizes follow the reference classifier evaluation: below 384 the shorter side is
resized (bicubic, antialiased) to int(size / 0.875) and the centre size x size crop is
taken; from 384 on the image is resized straight to size x size. A non-square size
H x W (dense prediction, or a classifier run off-square) keeps the aspect ratio: the image
is scaled by the smallest factor that makes it cover H x W, and the centre H x W is
cropped, so no crop margin is added and nothing is stretched. Pixels are then scaled to
[0, 1] and normalized with the ImageNet mean and std, channel order RGB, layout NCHW.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from casvit_deploy.model.variants import IMAGENET_MEAN, IMAGENET_STD
from casvit_deploy.settings import Resolution

CROP_PCT = 0.875
SQUARE_RESIZE_FROM = 384  # the reference resizes straight to the input size from here on
# "shorter-side": the shorter side to `resize` (aspect kept), then the centre `crop`;
# "square": straight to `resize` x `resize`; "cover": the smallest scale (aspect kept)
# that covers `crop`, then the centre `crop` (`resize` is None).
RESIZE_MODES = ("shorter-side", "square", "cover")


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

    @classmethod
    def for_resolution(cls, resolution: Resolution | int | str) -> "Preprocessing":
        size = Resolution.parse(resolution)
        if not size.square:
            return cls(None, "cover", size)
        if size.height >= SQUARE_RESIZE_FROM:
            return cls(size.height, "square", size)
        return cls(int(size.height / CROP_PCT), "shorter-side", size)

    def to_dict(self) -> dict:
        data = asdict(self)
        return data | {"crop": self.crop.to_record(), "mean": list(self.mean), "std": list(self.std)}
