"""The op registry: MIL op type -> implementation, and which of its inputs are tensors.

An implementation is called with keyword arguments named after the op's MIL inputs.
Inputs listed in `tensors` arrive as float32 (or integer) torch tensors, constant or not;
every other input is a compile-time constant given as a plain Python value (int, float,
bool, str, list). Implementations return one tensor or a tuple of tensors, one per output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from casvit_deploy.errors import CasvitError


class UnsupportedOpError(CasvitError):
    """A program op (or op variant) that the reference interpreter does not implement."""


@dataclass(frozen=True)
class OpImpl:
    fn: Callable
    tensors: frozenset[str]


OPS: dict[str, OpImpl] = {}


def register(op_type: str, tensors: tuple[str, ...] = ("x",)):
    """Decorator: `fn` implements MIL op `op_type`; `tensors` name its tensor inputs."""

    def add(fn: Callable) -> Callable:
        OPS[op_type] = OpImpl(fn, frozenset(tensors))
        return fn

    return add


def lookup(op_type: str, op_name: str) -> OpImpl:
    """The implementation of `op_type`; UnsupportedOpError naming the op if there is none."""
    from casvit_deploy.formats.coreml.mil import ops  # noqa: F401  (fills the registry)

    impl = OPS.get(op_type)
    if impl is None:
        raise UnsupportedOpError(
            f"the MIL reference interpreter does not implement op {op_type!r} (op {op_name!r}); "
            f"supported: {', '.join(sorted(OPS))}")
    return impl
