"""A reference interpreter for saved Core ML ML programs, for parity checks off macOS.

`load_mlpackage` reads a `.mlpackage` back into a MIL program with its weights,
`Interpreter` executes its `main` function op by op on CPU tensors (emulating the
program's fp16/fp32 arithmetic at op boundaries; it is not Apple's runtime), and
`block_vars` finds the MIL variable that holds each model block's output.
"""

from casvit_deploy.formats.coreml.mil.blocks import BlockVars, block_vars
from casvit_deploy.formats.coreml.mil.interpreter import Interpreter
from casvit_deploy.formats.coreml.mil.loader import MLPackage, load_mlpackage
from casvit_deploy.formats.coreml.mil.registry import OPS, UnsupportedOpError

__all__ = ["BlockVars", "Interpreter", "MLPackage", "OPS", "UnsupportedOpError", "block_vars", "load_mlpackage"]
