"""A manifest's "details": the facts only one format knows, typed per format.

Each format subclasses `Details` (formats/<name>/details.py) with one field per fact, each
optional (None: not recorded for this artifact, and left out of the JSON). The fields every
format has are here. Values are JSON data: a field's type says what it must be (a string,
number, flag, object or list); what is inside an object or list is the format's to read.
Keys a newer or older casvit-deploy wrote that this one does not know are kept as they are
in `other`, so reading and writing a manifest never loses them.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from casvit_deploy.artifacts.fields import FieldError

_JSON_TYPES = {str: (str,), int: (int,), float: (int, float), bool: (bool,), dict: (dict,), list: (list,)}


@dataclass
class Details:
    """`load_check`: the check of the written artifact against eager (export/base.py
    LoadCheck); `checkpoint_ignored_keys`: checkpoint keys the reader left out (a detection
    checkpoint's neck and head)."""

    load_check: dict | None = None
    checkpoint_ignored_keys: dict | None = None
    other: dict = field(default_factory=dict)  # keys this version does not know, kept as read

    def target(self) -> dict:
        """Which runtime releases can load the artifact, for `casvit info` (e.g. opset and the
        first ONNX Runtime release); formats that know it override this."""
        return {}

    def mobile_summary(self) -> str | None:
        """One line on how phones' accelerators would take the artifact, where the format
        records it (ONNX Runtime's mobile usability checker); None otherwise."""
        return None

    def choices(self) -> list[str]:
        """How searches under the format's own options chose what the artifact is (e.g. CoreML's
        --palettize auto), one line each, for `casvit info`; none by default."""
        return []

    def compression_label(self) -> str:
        """What makes the artifact smaller or lossier beyond its precision, in a few words
        (the export summary's "compression" column); "" when nothing does."""
        return ""

    def to_dict(self) -> dict:
        known = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "other"}
        return {k: v for k, v in known.items() if v is not None} | self.other

    @classmethod
    def from_dict(cls, data: dict, where: str = "details") -> "Details":
        """The typed details of `data` (a JSON object); FieldError naming a field of the wrong type."""
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)} - {"other"}
        values = {name: _checked(hints[name], data[name], f"{where}.{name}") for name in names & set(data)}
        return cls(**values, other={k: v for k, v in data.items() if k not in names})


def _checked(hint, value, where: str):
    if value is None:
        return None
    base = next(a for a in typing.get_args(hint) if a is not type(None))
    allowed = _JSON_TYPES[typing.get_origin(base) or base]
    if isinstance(value, bool) and bool not in allowed:
        allowed = ()
    if not isinstance(value, allowed):
        raise FieldError(f"field {where!r} must be {_words(base)}, got {type(value).__name__}")
    return value


def _words(base) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            dict: "an object", list: "a list"}[typing.get_origin(base) or base]
