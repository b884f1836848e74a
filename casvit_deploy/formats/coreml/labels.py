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
from casvit_deploy.formats.coreml.options import is_imagenet

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


# A labels file is read up to this many lines (ImageNet-21k's 21,841 classes fit): it is checked
# before the model is loaded, when the number of classes is not known yet.
MAX_LABELS = 25_000
MAX_LINE_BYTES = MAX_LABEL_CHARS * 4 + 2 + 3  # UTF-8 takes at most 4 bytes a character, "\r\n" 2, a BOM 3


def check_source(source: Path | str | None) -> None:
    """UsageError, before the model is loaded, for a --labels value that is neither "imagenet"
    nor a regular file (a missing file, a folder, a FIFO, a device such as /dev/zero) holding
    at most MAX_LABELS good labels (see `read_labels`); their count is checked against the
    model's classes once it is loaded."""
    if source is None or is_imagenet(source):
        return
    if not os.path.lexists(source):
        raise UsageError(f"--labels {source}: no such file")
    _read_file(Path(source))


def read_labels(source: Path | str, num_classes: int) -> list[str]:
    """The labels `source` names, one per class; UsageError when unreadable or miscounted."""
    if is_imagenet(source):
        labels, where = imagenet_labels(), "the ImageNet-1k class names"
    else:
        labels, where = _read_file(Path(source)), f"labels file {source}"
    if len(labels) != num_classes:
        raise UsageError(f"{where} has {len(labels)} labels, the model has {num_classes} classes")
    duplicate, count = Counter(labels).most_common(1)[0] if labels else ("", 0)
    if count > 1:
        raise UsageError(f"{where} lists {duplicate!r} {count} times; a classifier needs distinct labels")
    return labels


def _read_file(path: Path) -> list[str]:
    """One label per line of a regular UTF-8 text file (a final line end, "\r\n" line ends, a
    BOM and spaces around a label allowed), read a line at a time and no further than
    MAX_LABELS lines of the longest label; UsageError naming what is wrong and where."""
    labels: list[str] = []
    with open_regular(path, "--labels", LABELS_HINT) as file:
        while raw := file.readline(MAX_LINE_BYTES + 1):
            where = f"labels file {path}: line {len(labels) + 1}"
            if len(labels) == MAX_LABELS:
                raise UsageError(f"labels file {path} holds more than {MAX_LABELS} labels, the most read")
            if len(raw) > MAX_LINE_BYTES:
                raise UsageError(f"{where} is longer than {MAX_LABEL_CHARS} characters; a label has at most "
                                 f"{MAX_LABEL_CHARS}")
            labels.append(_label(_decoded(raw, where, first=not labels), where))
    return labels


def _decoded(raw: bytes, where: str, first: bool) -> str:
    """`raw` (one line, its line end included) as text without its line end."""
    try:
        text = raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"{where} is not UTF-8 text (byte {err.start}); {LABELS_HINT}") from None
    return text.removesuffix("\n").removesuffix("\r")


def _label(line: str, where: str) -> str:
    """`line` without surrounding spaces; UsageError if blank, too long or holding a control character."""
    label = line.strip()
    if not label:
        raise UsageError(f"{where} is blank; {LABELS_HINT}, no blank lines")
    if len(label) > MAX_LABEL_CHARS:
        raise UsageError(f"{where} is {len(label)} characters long; a label has at most {MAX_LABEL_CHARS}")
    if found := CONTROL.search(label):
        raise UsageError(f"{where} holds the control character {found.group()!r}; a label is plain text")
    return label
