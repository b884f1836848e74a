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
from dataclasses import dataclass

import numpy as np
from torch import nn

from casvit_deploy.data.batches import chunks
from casvit_deploy.errors import UsageError
from casvit_deploy.runtime.mil import Interpreter
from casvit_deploy.runtime.mil.precision import FLOAT_DTYPES
from casvit_deploy.settings import Precision

MIN_ELEMENTS = 256          # smaller weights are left uncompressed (a 48-channel depthwise 3x3 has 432)
MAX_GROUP = 16              # output channels sharing one 4-bit lookup table, at most
ACTIVATION_PASSES = ("compression::insert_prefix_quantize_dequantize_pair",
                     "compression::insert_suffix_quantize_dequantize_pair",
                     "common::dequantize_quantize_pair_elimination")


@dataclass(frozen=True)
class Compression:
    """One kind of compression: the flag that asks for it, what it does, and the oldest iOS
    that runs it."""

    flag: str
    description: str
    minimum_ios: int
    palettize_bits: int | None = None

    @property
    def minimum_target(self) -> str:
        return f"iOS{self.minimum_ios}"

    def to_record(self) -> dict:
        return {"flag": self.flag, "description": self.description, "minimum_target": self.minimum_target}


INT8_WEIGHTS = Compression("--precision int8", "int8 weights (linear symmetric, one scale per output channel); "
                           "fp16 activations", 16)
W8A8 = Compression("--precision w8a8", "int8 weights (per output channel) and int8 activations (ranges from "
                   "the calibration set) around conv and linear; adds fp16", 17)


def palettized(bits: int) -> Compression:
    tables = "one table per group of output channels" if bits == 4 else "one table per weight"
    return Compression(f"--palettize {bits}", f"{bits}-bit palettized weights (k-means lookup tables, {tables}); "
                       "fp16 activations", 18 if bits == 4 else 16, bits)


def compression_for(precision: Precision, palettize: int | None) -> Compression | None:
    """The compression that `precision` and `--palettize` ask for (None: none); UsageError
    for a combination that makes no sense."""
    if palettize is not None:
        if precision in (Precision.INT8, Precision.W8A8):
            raise UsageError(f"--palettize compresses the weights of an fp16 or fp32 program; it does not "
                             f"combine with --precision {precision.value}")
        return palettized(palettize)
    return {Precision.INT8: INT8_WEIGHTS, Precision.W8A8: W8A8}.get(precision)


def check_target(compression: Compression, target, target_name: str) -> None:
    """UsageError when the deployment target `target` (a coremltools target) is older than
    the compression needs."""
    import coremltools as ct

    needed = getattr(ct.target, compression.minimum_target)
    if int(target) < int(needed):
        macos = compression.minimum_ios - 3
        raise UsageError(f"{compression.flag} needs --deployment-target {compression.minimum_target} or newer "
                         f"(macOS{macos}); got {target_name}")


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
