"""Class labels for classifier exports: a labels file (one per line), or "imagenet" for the
1000 ImageNet-1k class names shipped with the package (the official CAS-ViT checkpoints
are ImageNet-1k classifiers)."""

from __future__ import annotations

from collections import Counter
from importlib import resources
from pathlib import Path

from casvit_deploy.errors import UsageError
from casvit_deploy.formats.coreml.options import IMAGENET_LABELS

# data/imagenet1k_classes.txt: the ImageNet-1k class names in class-index order, taken from
# torchvision 0.29.1 (PyPI wheel torchvision-0.29.1-cp311-cp311-manylinux_2_28_x86_64.whl,
# sha256 2cb67802...cdf5), module torchvision/models/_meta.py, list _IMAGENET_CATEGORIES.
IMAGENET_FILE = "imagenet1k_classes.txt"


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names, index 0 ("tench") to 999 ("toilet tissue")."""
    text = resources.files("casvit_deploy").joinpath("data", IMAGENET_FILE).read_text(encoding="utf-8")
    return text.splitlines()


def is_imagenet(source: Path | str | None) -> bool:
    return source is not None and str(source).strip().lower() == IMAGENET_LABELS


def read_labels(source: Path | str, num_classes: int) -> list[str]:
    """The labels `source` names, one per class; UsageError when unreadable or miscounted."""
    if is_imagenet(source):
        labels, where = imagenet_labels(), "the ImageNet-1k class names"
    else:
        try:
            labels = [line.strip() for line in Path(source).read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read labels file {source}: {getattr(err, 'strerror', None) or err}") from None
        where = f"labels file {source}"
    if len(labels) != num_classes:
        raise UsageError(f"{where} has {len(labels)} labels, the model has {num_classes} classes")
    duplicate, count = Counter(labels).most_common(1)[0] if labels else ("", 0)
    if count > 1:
        raise UsageError(f"{where} lists {duplicate!r} {count} times; a classifier needs distinct labels")
    return labels
