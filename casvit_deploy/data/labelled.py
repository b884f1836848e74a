"""Labelled image sets for accuracy: an ImageFolder tree or a list file, read into (path, class
index) items and a fingerprint; images are decoded later, one at a time (data/images.py).

- A folder: one sub-folder per class holding its images (files named like images, directly
  inside; hidden entries are skipped). A folder named like an image anywhere else is refused,
  as are images at the top level (they belong to no class).
- A list file: `path label` per line, ImageNet-validation style; paths relative to the list
  file's folder (or absolute); blank lines skipped.

Class names become indices in this order of rules:
1. with `class_names` (a labels file, or the ImageNet-1k names): a name's line number;
2. a decimal integer: that index;
3. ImageNet synset ids (`n01440764`): their sorted order, the index order of ImageNet-1k
   classifiers, but only when all 1000 distinct ids are present; a partial set cannot be
   placed (the package ships no synset list), so it is refused with the remedy (a labels
   file of the 1000 ids in index order, or folders named by index).
Anything else is an unknown class name. Every index must be below the model's class count.

The fingerprint is the item count and the sha256 of the sorted `path<TAB>index` lines
(paths relative to the tree or as the list file writes them): it identifies which files
were evaluated with which labels, not the images' contents.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from casvit_deploy.data.files import open_regular
from casvit_deploy.data.images import IMAGE_SUFFIXES, preprocess, read_image
from casvit_deploy.errors import UsageError

SYNSET = re.compile(r"n\d{8}")
IMAGENET_CLASSES = 1000
MAX_ITEMS = 2_000_000            # ImageNet-21k's validation scale; a list longer than this is not one
MAX_LIST_BYTES = 512 << 20       # 2 million lines of up to ~250 bytes
LIST_HINT = "give a text file with one `path label` per line"


@dataclass(frozen=True)
class Fingerprint:
    """Which files, with which labels: `files` and the sha256 of their sorted list."""

    files: int
    sha256: str

    def to_dict(self) -> dict:
        return {"files": self.files, "sha256": self.sha256}


@dataclass(frozen=True)
class LabelledSet:
    """`items`: (path as listed, class index), in reading order; `root`: where relative paths start."""

    source: Path
    kind: str                      # "folder" or "list"
    root: Path
    items: tuple[tuple[str, int], ...]
    classes: int                   # distinct labels present

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.items]

    def path(self, index: int) -> Path:
        return self.root / self.items[index][0]

    @property
    def fingerprint(self) -> Fingerprint:
        digest = hashlib.sha256()
        for path, label in sorted(self.items):
            digest.update(f"{path}\t{label}\n".encode())
        return Fingerprint(len(self.items), digest.hexdigest())

    def describe(self) -> str:
        return f"{len(self)} images of {self.classes} classes from {self.source} ({self.kind})"

    def batches(self, pre, size: int = 64) -> Iterator[np.ndarray]:
        """(n, 3, H, W) float32 batches of at most `size` images in item order, each read
        (data/images.py: an unreadable image is a UsageError naming it) and preprocessed by `pre`."""
        for start in range(0, len(self.items), size):
            stop = min(start + size, len(self.items))
            yield np.stack([preprocess(read_image(self.path(i)), pre) for i in range(start, stop)])


def read_labelled(source: Path, num_classes: int, class_names: list[str] | None = None,
                  option: str = "--data") -> LabelledSet:
    """The labelled set at `source` (a folder tree or a list file); UsageError naming `option`
    for an empty set, an unknown class name, or a label the `num_classes` head cannot have."""
    source = Path(source)
    if source.is_dir():
        return _from_folder(source, num_classes, class_names, option)
    if source.exists():
        return _from_list(source, num_classes, class_names, option)
    raise UsageError(f"{option} {source}: no such folder or file")


def _from_folder(root: Path, num_classes: int, class_names: list[str] | None, option: str) -> LabelledSet:
    folders, strays = [], []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            folders.append(entry)
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            strays.append(entry.name)
    if strays:
        raise UsageError(f"{option} {root} holds images outside class folders (e.g. {strays[0]}); an image folder "
                         "tree has one sub-folder per class")
    if not folders:
        raise UsageError(f"{option} {root} holds no class folders (one sub-folder of images per class)")
    indices = class_indices([f.name for f in folders], num_classes, class_names, f"{option} {root}: class folder")
    items = [(f"{folder.name}/{name}", indices[folder.name]) for folder in folders
             for name in _image_names(folder, option)]
    return _checked(LabelledSet(root, "folder", root, tuple(items), len({i for _, i in items})), option)


def _image_names(folder: Path, option: str) -> list[str]:
    """The names of the images directly in `folder`, sorted; a folder named like an image is refused."""
    names = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if entry.is_dir():
            raise UsageError(f"{option}: {entry} is a folder named like an image; class folders hold image files")
        names.append(entry.name)
    return names


def _from_list(path: Path, num_classes: int, class_names: list[str] | None, option: str) -> LabelledSet:
    rows = _list_rows(path, option)
    indices = class_indices(sorted({label for _, label, _ in rows}), num_classes, class_names,
                            f"{option} {path}: label")
    items = tuple((file, indices[label]) for file, label, _ in rows)
    return _checked(LabelledSet(path, "list", path.parent, items, len({i for _, i in items})), option)


def _list_rows(path: Path, option: str) -> list[tuple[str, str, int]]:
    """(path, label, line number) per non-blank line of a UTF-8 list file."""
    with open_regular(path, f"{option} list", LIST_HINT) as file:
        data = file.read(MAX_LIST_BYTES + 1)
    if len(data) > MAX_LIST_BYTES:
        raise UsageError(f"{option} {path} is larger than {MAX_LIST_BYTES >> 20} MB; {LIST_HINT}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UsageError(f"{option} {path} is not UTF-8 text (byte {err.start}); {LIST_HINT}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().rsplit(maxsplit=1)
        if len(parts) != 2:
            raise UsageError(f"{option} {path} line {number}: {line.strip()[:60]!r} is not `path label`")
        rows.append((parts[0], parts[1], number))
        if len(rows) > MAX_ITEMS:
            raise UsageError(f"{option} {path} lists more than {MAX_ITEMS} images")
    return rows


def _checked(labelled: LabelledSet, option: str) -> LabelledSet:
    if not labelled.items:
        raise UsageError(f"{option} {labelled.source} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    if len(labelled.items) > MAX_ITEMS:
        raise UsageError(f"{option} {labelled.source} holds more than {MAX_ITEMS} images")
    return labelled


def class_indices(names: list[str], num_classes: int, class_names: list[str] | None, what: str) -> dict[str, int]:
    """Name -> class index by the rules of this module's docstring; UsageError naming `what`."""
    if class_names is not None:
        known = {name: i for i, name in enumerate(class_names)}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UsageError(f"{what} {unknown[0]!r} is not a name in --labels ({len(unknown)} unknown); "
                             "names must match a line of the labels file exactly")
        return {n: known[n] for n in names}
    if all(n.isdecimal() for n in names):
        return _in_range({n: int(n) for n in names}, num_classes, what)
    if all(SYNSET.fullmatch(n) for n in names):
        return _synsets(names, num_classes, what)
    unknown = next(n for n in names if not n.isdecimal() and not SYNSET.fullmatch(n))
    raise UsageError(f"{what} {unknown!r} is not a class index or an ImageNet synset id; name classes by index "
                     "(0, 1, ...) or give --labels FILE with one class name per line in index order")


def _in_range(indices: dict[str, int], num_classes: int, what: str) -> dict[str, int]:
    too_large = [n for n, i in indices.items() if i >= num_classes]
    if too_large:
        raise UsageError(f"{what} {too_large[0]!r} is class index {indices[too_large[0]]}, but the model's head has "
                         f"{num_classes} classes (0 to {num_classes - 1})")
    return indices


def _synsets(names: list[str], num_classes: int, what: str) -> dict[str, int]:
    distinct = sorted(set(names))
    if len(distinct) != IMAGENET_CLASSES:
        raise UsageError(f"{what}s are {len(distinct)} ImageNet synset ids, not all {IMAGENET_CLASSES}: their class "
                         "indices cannot be known from a partial set; give --labels FILE with the 1000 synset ids "
                         "in index order, or name the folders by class index")
    if num_classes != IMAGENET_CLASSES:
        raise UsageError(f"{what}s are the {IMAGENET_CLASSES} ImageNet-1k synsets, but the model's head has "
                         f"{num_classes} classes")
    return {name: index for index, name in enumerate(distinct)}
