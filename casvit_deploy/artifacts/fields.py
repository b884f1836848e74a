"""Typed reading of untrusted JSON objects: every failure is one line naming the field."""

from __future__ import annotations

import math
from collections.abc import Callable

from casvit_deploy.errors import UsageError


class FieldError(UsageError):
    """A field that is missing, of the wrong type, or out of range."""


def _show(value) -> str:
    if isinstance(value, (list, dict)):
        return f"a {type(value).__name__} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number_in(value: object, lo: float, hi: float) -> bool:
    """A JSON number (not a bool) from lo to hi; ints are compared exactly (an int too large
    for a float is simply out of range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (isinstance(value, int) or math.isfinite(value)) and lo <= value <= hi


class Fields:
    """Typed access to one JSON object; `prefix` names its place in the document."""

    def __init__(self, data: object, prefix: str = ""):
        if not isinstance(data, dict):
            raise FieldError(f"field {prefix.rstrip('.') or '(top level)'!r} must be an object, got {_show(data)}")
        self.data, self.prefix = data, prefix

    def fail(self, key: str, expected: str):
        got = _show(self.data[key]) if key in self.data else "nothing (missing)"
        raise FieldError(f"field {self.prefix + key!r} must be {expected}, got {got}")

    def _get(self, key: str, check: Callable[[object], bool], expected: str, optional: bool):
        if key not in self.data or (optional and self.data[key] is None):
            if optional:
                return None
            self.fail(key, expected)
        value = self.data[key]
        if not check(value):
            self.fail(key, expected)
        return value

    def str(self, key: str, choices: tuple[str, ...] | None = None, optional: bool = False,
            max_len: int = 4096) -> str | None:
        expected = f"one of {', '.join(choices)}" if choices else "a string"
        return self._get(key, lambda v: isinstance(v, str) and len(v) <= max_len
                         and (choices is None or v in choices), expected, optional)

    def int(self, key: str, lo: int, hi: int, optional: bool = False, step: int = 1) -> int | None:
        expected = f"an integer from {lo} to {hi}" + (f", a multiple of {step}" if step > 1 else "")
        return self._get(key, lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
                         and v % step == 0, expected, optional)

    def float(self, key: str, lo: float, hi: float, optional: bool = False) -> float | None:
        value = self._get(key, lambda v: _number_in(v, lo, hi), f"a number from {lo:g} to {hi:g}", optional)
        return None if value is None else float(value)

    def bool(self, key: str) -> bool:
        return self._get(key, lambda v: isinstance(v, bool), "true or false", False)

    def obj(self, key: str, optional: bool = False) -> "Fields | None":
        value = self._get(key, lambda v: isinstance(v, dict), "an object", optional)
        return None if value is None else Fields(value, f"{self.prefix}{key}.")

    def list(self, key: str, max_len: int) -> list:
        return self._get(key, lambda v: isinstance(v, list) and len(v) <= max_len,
                         f"a list of at most {max_len} items", False)

    def str_map(self, key: str, optional_values: bool = False, max_len: int = 4096) -> dict:
        ok = (lambda v: isinstance(v, str) or (optional_values and v is None))
        return self._get(key, lambda d: isinstance(d, dict) and len(d) <= max_len
                         and all(isinstance(k, str) and ok(v) for k, v in d.items()),
                         "an object of strings", False)

    def floats(self, key: str, length: int, lo: float, hi: float) -> tuple[float, ...]:
        def check(v):
            return isinstance(v, list) and len(v) == length and all(_number_in(x, lo, hi) for x in v)
        return tuple(float(x) for x in self._get(key, check, f"a list of {length} numbers from {lo:g} to {hi:g}",
                                                 False))
