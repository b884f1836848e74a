"""How values are held: the dtype a MIL variable declares, emulated on CPU tensors.

Every op computes in float32. Its results are then held in the dtype the program
declares for them: a float16 result is rounded to the nearest float16 (overflow becomes
±inf, as on device) and kept in a float32 tensor, so the next op reads exactly the
float16 value without converting again. This is an emulation of the program's
arithmetic at op boundaries, not of Apple's kernels (which may accumulate in float16).
"""

from __future__ import annotations

import numpy as np
import torch

FLOAT_DTYPES = ("fp16", "fp32")
NUMPY_DTYPES = {"fp16": np.float16, "fp32": np.float32, "int32": np.int32, "int8": np.int8, "uint8": np.uint8,
                "bool": np.bool_}
INT_DTYPES = {"int32": torch.int32, "int8": torch.int8, "uint8": torch.uint8}


def dtype_name(var) -> str:
    """'fp16', 'fp32', 'int32', ... for a MIL variable (tensor element type or scalar type)."""
    from coremltools.converters.mil.mil import types

    return types.builtin_to_string(var.dtype) or "other"


def hold(value: torch.Tensor, dtype: str) -> torch.Tensor:
    """`value` as the program holds a variable of `dtype` (float16 values on the float16 grid)."""
    if dtype == "fp16":
        return value.to(torch.float16).to(torch.float32)
    if dtype == "fp32":
        return value.to(torch.float32)
    if dtype in INT_DTYPES:
        return value.to(INT_DTYPES[dtype])
    if dtype == "bool":
        return value.to(torch.bool)
    return value  # a classifier's label and score dictionary, represented as index and tensor


def to_numpy(value: torch.Tensor, dtype: str) -> np.ndarray:
    """A held value as a NumPy array of the declared dtype (exact for float16); a value of
    another type (a classifier's label index) keeps its tensor's dtype."""
    array = value.detach().numpy()
    return array.astype(NUMPY_DTYPES[dtype], copy=False) if dtype in NUMPY_DTYPES else array


def to_tensor(value) -> torch.Tensor:
    """A NumPy constant or feed as a tensor; floating values are computed in float32."""
    array = np.asarray(value)
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.to(torch.float32) if tensor.is_floating_point() else tensor
