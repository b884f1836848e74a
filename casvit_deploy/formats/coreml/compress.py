"""CoreML compression with coremltools' own optimization APIs (`coremltools.optimize.coreml`),
and the deployment target each kind needs.

- int8 weights: `linear_quantize_weights`, symmetric, one scale per output channel (iOS16).
- palettized weights: `palettize_weights`, k-means lookup tables; 8 and 6 bits one table per
  weight (iOS16), 4 bits one table per group of output channels (iOS18).
- W8A8: int8 weights as above and int8 activations (iOS17): quantize/dequantize pairs around
  conv and linear inputs (coremltools' activation passes), with ranges observed on the
  calibration set. coremltools observes the ranges by running the model on Core ML, which
  exists only on macOS; here the same min/max ranges come from the MIL reference interpreter,
  and coremltools' passes then insert the pairs exactly as `linear_quantize_activations` does.
  Adds (the residual stream and CATM's sums) stay fp16, as in the ONNX and ExecuTorch int8
  forms: quantizing them too took XS at 64 from cosine 0.9973 to 0.9875 and SNR 24.3 to
  19.2 dB (trained-like weights).

Weights with fewer than MIN_ELEMENTS elements (gate convs with one output channel, biases)
stay fp16.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from torch import nn

from casvit_deploy.data.batches import chunks
from casvit_deploy.formats.coreml.compression import W8A8, Compression
from casvit_deploy.formats.coreml.mil import Interpreter
from casvit_deploy.formats.coreml.mil.precision import FLOAT_DTYPES

MIN_ELEMENTS = 256          # smaller weights are left uncompressed (a 48-channel depthwise 3x3 has 432)
MAX_GROUP = 16              # output channels sharing one 4-bit lookup table, at most
ACTIVATION_PASSES = ("compression::insert_prefix_quantize_dequantize_pair",
                     "compression::insert_suffix_quantize_dequantize_pair",
                     "common::dequantize_quantize_pair_elimination")


def group_size(model: nn.Module) -> int:
    """Output channels per 4-bit lookup table: the largest divisor of every compressed
    weight's output channel count, at most MAX_GROUP."""
    counts = [m.weight.shape[0] for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
              and m.weight.numel() >= MIN_ELEMENTS]
    size = math.gcd(*counts) if counts else 1
    return max(d for d in range(1, MAX_GROUP + 1) if size % d == 0)


def weight_config(compression: Compression, model: nn.Module):
    """The coremltools OptimizationConfig for the weights."""
    import coremltools.optimize.coreml as cto

    if compression.palettize_bits is None:
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                         weight_threshold=MIN_ELEMENTS)
    elif compression.palettize_bits == 4:
        op = cto.OpPalettizerConfig(nbits=4, mode="kmeans", granularity="per_grouped_channel",
                                    group_size=group_size(model), weight_threshold=MIN_ELEMENTS)
    else:
        op = cto.OpPalettizerConfig(nbits=compression.palettize_bits, mode="kmeans", granularity="per_tensor",
                                    weight_threshold=MIN_ELEMENTS)
    return cto.OptimizationConfig(global_config=op)


def compress_weights(mlmodel, compression: Compression, model: nn.Module):
    import coremltools.optimize.coreml as cto

    config = weight_config(compression, model)
    if compression.palettize_bits is None:
        return cto.linear_quantize_weights(mlmodel, config)
    return cto.palettize_weights(mlmodel, config)


def activation_ranges(program, feeds: np.ndarray, batch: int) -> dict[str, dict[str, float]]:
    """{variable: {"rmin", "rmax"}} of the program's input and every float value it computes,
    over `feeds` (the program's input values), run by the MIL reference interpreter."""
    interpreter = Interpreter(program)
    (input_name,) = interpreter.inputs
    names = [name for step in interpreter.steps for name, dtype in step.outputs if dtype in FLOAT_DTYPES]
    ranges: dict[str, dict[str, float]] = {}
    for chunk in chunks(feeds, batch):
        values = interpreter.run({input_name: chunk}, names) | {input_name: chunk}
        for name, value in values.items():
            low, high = float(np.min(value)), float(np.max(value))
            seen = ranges.setdefault(name, {"rmin": low, "rmax": high})
            seen["rmin"], seen["rmax"] = min(seen["rmin"], low), max(seen["rmax"], high)
    return ranges


def quantize_activations(mlmodel, ranges: dict[str, dict[str, float]]):
    """`mlmodel` with int8 quantize/dequantize pairs inserted by coremltools' activation
    passes, using `ranges` (see activation_ranges)."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models.utils import _apply_graph_pass

    config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric"),
                                    op_type_configs={"add": None})  # adds stay fp16
    passes = [PASS_REGISTRY[name] for name in ACTIVATION_PASSES]
    for graph_pass in passes[:2]:
        graph_pass.set_options([PassOption("config", config), PassOption("activation_stats", ranges)])
    return _apply_graph_pass(mlmodel, passes, spec_version=int(ct.target.iOS17), skip_model_load=True)


def compress(mlmodel, compression: Compression, model: nn.Module, program_of: Callable,
             feeds: np.ndarray | None, batch: int):
    """`mlmodel` compressed as `compression` asks. W8A8 needs `feeds` (calibration inputs
    as the program takes them) and `program_of(mlmodel)`, its MIL program."""
    if compression is W8A8:
        mlmodel = quantize_activations(mlmodel, activation_ranges(program_of(mlmodel), feeds, batch))
    return compress_weights(mlmodel, compression, model)
