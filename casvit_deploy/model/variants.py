"""The four official CAS-ViT variants (arXiv 2408.03703, reference `rcvit.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from casvit_deploy.settings import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401  (re-exported: the model's normalization)


@dataclass(frozen=True)
class Variant:
    name: str
    layers: tuple[int, int, int, int]
    dims: tuple[int, int, int, int]
    params_m: float
    gmacs_224: float
    top1_paper: float
    top1_zoo: tuple[float, float]


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("xs", (2, 2, 4, 2), (48, 56, 112, 220), 3.20, 0.56, 77.5, (78.3, 78.7)),
        Variant("s", (3, 3, 6, 3), (48, 64, 128, 256), 5.76, 0.93, 80.2, (80.9, 81.1)),
        Variant("m", (3, 3, 6, 3), (64, 96, 192, 384), 12.42, 1.89, 81.4, (82.8, 83.0)),
        Variant("t", (3, 3, 6, 3), (96, 128, 256, 512), 21.76, 3.60, 82.3, (83.9, 84.1)),
    )
}


def get_variant(name: str) -> Variant:
    """The variant called `name` (case-insensitive, `casvit_`/`rcvit_` prefixes allowed)."""
    key = name.lower().removeprefix("casvit_").removeprefix("rcvit_").removeprefix("casvit-")
    if key not in VARIANTS:
        from casvit_deploy.errors import UsageError

        raise UsageError(f"unknown variant {name!r}: choose one of {', '.join(VARIANTS)}")
    return VARIANTS[key]
