"""Executing a MIL function op by op on CPU tensors.

The function is compiled once into a list of steps (implementation, constant arguments,
variable arguments, outputs with their declared dtypes); constexpr_* steps (weight
decompression: constant inputs only) are evaluated then, once; `run` walks the other steps,
holding every result in its declared dtype (see `precision`) and freeing each value
after its last use unless it was asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from casvit_deploy.errors import UsageError
from casvit_deploy.formats.coreml.mil.precision import dtype_name, hold, to_numpy, to_tensor
from casvit_deploy.formats.coreml.mil.registry import OpImpl, UnsupportedOpError, lookup

CONSTEXPR = "constexpr_"  # ops whose inputs are all constants (compressed weights)


@dataclass
class Step:
    """One non-const op, ready to run."""

    op_type: str
    name: str
    impl: OpImpl
    static: dict = field(default_factory=dict)   # input name -> constant argument
    dynamic: dict = field(default_factory=dict)  # input name -> variable name (or tuple of names)
    outputs: tuple[tuple[str, str], ...] = ()    # (variable name, dtype)


def _is_const(var) -> bool:
    return var.op is not None and var.op.op_type == "const"


def _plain(value):
    """A constant as a plain Python value (lists for arrays, scalars for 0-d)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def _constant(var, as_tensor: bool):
    if var.val is None:
        raise UnsupportedOpError(f"constant {var.name!r} has no value")
    return to_tensor(var.val) if as_tensor else _plain(var.val)


def compile_step(op) -> Step:
    """A Step for MIL `op`; UnsupportedOpError if the op (or a variadic input) is unknown."""
    impl = lookup(op.op_type, op.name)
    step = Step(op.op_type, op.name, impl,
                outputs=tuple((v.name, dtype_name(v)) for v in op.outputs))
    for key, var in op.inputs.items():
        if isinstance(var, (list, tuple)):
            raise UnsupportedOpError(f"op {op.op_type!r} ({op.name!r}) has a variadic input {key!r}")
        if _is_const(var):
            step.static[key] = _constant(var, key in impl.tensors)
        else:
            step.dynamic[key] = var.name
    return step


@contextmanager
def torch_threads(threads: int | None):
    """torch's intra-op thread count set to `threads` (None: unchanged) for the block."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Interpreter:
    """Runs one function of a MIL program (a coremltools `Program`).

    `threads` is torch's thread count while running (None: torch's current setting). One
    thread is the default: the ops are small, and on a busy machine OpenMP threads cost
    far more than they gain (measured on 2 shared cores: XS 224 ~65 ms on 1 thread, 190-550 ms
    on 2).
    """

    def __init__(self, program, function: str = "main", threads: int | None = 1):
        self.threads = threads
        if function not in program.functions:
            raise UsageError(f"the MIL program has no function {function!r}")
        fn = program.functions[function]
        self.inputs = {name: (tuple(var.shape), dtype_name(var)) for name, var in fn.inputs.items()}
        self.outputs = [(var.name, dtype_name(var)) for var in fn.outputs]
        steps = [compile_step(op) for op in fn.operations if op.op_type != "const"]
        self.var_names = {name for step in steps for name, _ in step.outputs} | set(self.inputs)
        self.constants = self._evaluate([s for s in steps if s.op_type.startswith(CONSTEXPR)])
        self.steps = [s for s in steps if not s.op_type.startswith(CONSTEXPR)]
        self._last_use = self._last_uses()

    @torch.inference_mode()
    def _evaluate(self, steps: list[Step]) -> dict[str, tuple[torch.Tensor, str]]:
        """name -> (held value, dtype) of each output of `steps`, which read constants only."""
        values = {}
        for step in steps:  # in program order: a constexpr op may read an earlier one's output
            results = step.impl.fn(**step.static, **{key: values[name][0] for key, name in step.dynamic.items()})
            results = results if isinstance(results, tuple) else (results,)
            values.update({name: (hold(value, dtype), dtype) for (name, dtype), value in zip(step.outputs, results)})
        return values

    def _last_uses(self) -> dict[str, int]:
        last = {}
        for i, step in enumerate(self.steps):
            for name in step.dynamic.values():
                last[name] = i
        return last

    def _feed(self, feeds: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise UsageError(f"missing MIL program input(s): {', '.join(sorted(missing))}")
        env = {}
        for name, (shape, dtype) in self.inputs.items():
            value = np.asarray(feeds[name])
            if value.ndim != len(shape) or any(isinstance(d, int) and d != n for d, n in zip(shape, value.shape)):
                raise UsageError(f"input {name!r} has shape {value.shape}; the program expects {shape}")
            env[name] = hold(to_tensor(value), dtype)
        return env

    def _check_capture(self, capture: Iterable[str] | None) -> set[str]:
        wanted = set(capture or ())
        unknown = wanted - self.var_names
        if unknown:
            raise UsageError(f"no variable named {sorted(unknown)[0]!r} in the MIL program")
        return wanted

    @torch.inference_mode()
    def run(self, feeds: Mapping[str, np.ndarray], capture: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """The function's outputs and every variable named in `capture`, by MIL variable name."""
        keep = self._check_capture(capture) | {name for name, _ in self.outputs}
        env = self._feed(feeds)
        with torch_threads(self.threads):
            return self._execute(env, keep)

    def _execute(self, env: dict[str, torch.Tensor], keep: set[str]) -> dict[str, np.ndarray]:
        dtypes = {name: dtype for name, (_, dtype) in self.inputs.items()}
        for name, (value, dtype) in self.constants.items():
            env[name], dtypes[name] = value, dtype
        for i, step in enumerate(self.steps):
            args = dict(step.static)
            for key, name in step.dynamic.items():
                args[key] = env[name]
            result = step.impl.fn(**args)
            results = result if isinstance(result, tuple) else (result,)
            for (name, dtype), value in zip(step.outputs, results):
                env[name], dtypes[name] = hold(value, dtype), dtype
            for name in step.dynamic.values():
                if self._last_use.get(name) == i and name not in keep:
                    env.pop(name, None)
        return {name: to_numpy(env[name], dtypes[name]) for name in keep}
