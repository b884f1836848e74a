"""Class labels for classifier exports: a labels file (one per line), or "imagenet" for the
1000 ImageNet-1k class names shipped with the package (the official CAS-ViT checkpoints
are ImageNet-1k classifiers)."""

from __future__ import annotations

import os
import re
from collections import Counter
from importlib import resources
from pathlib import Path

from casvit_deploy.data.files import open_regular
from casvit_deploy.errors import UsageError
from casvit_deploy.formats.coreml.options import IMAGENET_LABELS

# data/imagenet1k_classes.txt: the ImageNet-1k class names in class-index order, taken from
# torchvision 0.29.1 (PyPI wheel torchvision-0.29.1-cp311-cp311-manylinux_2_28_x86_64.whl,
# sha256 2cb67802...cdf5), module torchvision/models/_meta.py, list _IMAGENET_CATEGORIES.
IMAGENET_FILE = "imagenet1k_classes.txt"
# A class name is a word or a phrase (ImageNet-1k's longest has 30 characters); 256 leaves room for
# long taxonomic names and translations, while a package stores its labels twice (its classify op and
# its metadata), so one absurd line would grow it by twice its size.
MAX_LABEL_CHARS = 256
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # control characters, line and paragraph separators
LABELS_HINT = "give a UTF-8 text file with one label per line"


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names, index 0 ("tench") to 999 ("toilet tissue")."""
    text = resources.files("casvit_deploy").joinpath("data", IMAGENET_FILE).read_text(encoding="utf-8")
    return text.splitlines()


def is_imagenet(source: Path | str | None) -> bool:
    return source is not None and str(source).strip().lower() == IMAGENET_LABELS


def check_source(source: Path | str | None) -> None:
    """UsageError, before any work, for a --labels value that is neither "imagenet" nor a
    regular file (a missing file, a folder, a FIFO, a device such as /dev/zero)."""
    if source is None or is_imagenet(source):
        return
    if not os.path.lexists(source):
        raise UsageError(f"--labels {source}: no such file")
    open_regular(Path(source), "--labels", LABELS_HINT).close()


def read_labels(source: Path | str, num_classes: int) -> list[str]:
    """The labels `source` names, one per class; UsageError when unreadable or miscounted."""
    if is_imagenet(source):
        labels, where = imagenet_labels(), "the ImageNet-1k class names"
    else:
        labels, where = _read_file(Path(source), num_classes), f"labels file {source}"
    if len(labels) != num_classes:
        raise UsageError(f"{where} has {len(labels)} labels, the model has {num_classes} classes")
    duplicate, count = Counter(labels).most_common(1)[0] if labels else ("", 0)
    if count > 1:
        raise UsageError(f"{where} lists {duplicate!r} {count} times; a classifier needs distinct labels")
    return labels


def _read_file(path: Path, num_classes: int) -> list[str]:
    """One label per line of a regular UTF-8 text file (a final line end, "\r\n" line ends and
    spaces around a label allowed), read no further than `num_classes` labels of the longest
    length could reach; UsageError naming what is wrong and where."""
    limit = num_classes * (MAX_LABEL_CHARS * 4 + 2)  # UTF-8 takes at most 4 bytes a character, "\r\n" 2
    with open_regular(path, "--labels", LABELS_HINT) as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise UsageError(f"labels file {path} is larger than {num_classes} labels of at most {MAX_LABEL_CHARS} "
                         f"characters can be ({limit} bytes); {LABELS_HINT}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UsageError(f"labels file {path} is not UTF-8 text (byte {err.start}); {LABELS_HINT}") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [_label(line.removesuffix("\r"), number, path) for number, line in enumerate(lines, 1)]


def _label(line: str, number: int, path: Path) -> str:
    """`line` without surrounding spaces; UsageError if blank, too long or holding a control character."""
    label, where = line.strip(), f"labels file {path}: line {number}"
    if not label:
        raise UsageError(f"{where} is blank; {LABELS_HINT}, no blank lines")
    if len(label) > MAX_LABEL_CHARS:
        raise UsageError(f"{where} is {len(label)} characters long; a label has at most {MAX_LABEL_CHARS}")
    if found := CONTROL.search(label):
        raise UsageError(f"{where} holds the control character {found.group()!r}; a label is plain text")
    return label
