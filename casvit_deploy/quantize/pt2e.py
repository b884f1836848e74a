"""PyTorch 2 export quantization (PT2E), whatever the quantizer: calibration, keep-float,
observer reuse for the keep-float search, and the block-by-block reading of the result.

A format supplies its quantizer (`MakeQuantizer`: ExecuTorch's XNNPACKQuantizer, LiteRT's
PT2EQuantizer) built with a `keep_float` predicate; nodes it covers stay unannotated, hence
float. `prepare_pt2e` inserts observers into the exported graph, calibration runs the
images through it, `convert_pt2e` turns the observers into quantize/dequantize pairs that
the format's backend lowers into int8 kernels (`fold`: whether the weights' quantize ops are
folded into int8 constants; LiteRT's converter needs them unfolded).

The converted module is also a simulation of the lowered program (same quantization
parameters, float arithmetic between q/dq pairs), which `BlockProbe` reads block by block.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from casvit_deploy.data.batches import chunks, run_in_batches
from casvit_deploy.quantize.targets import NodeOrigin
from casvit_deploy.settings import CalibrationMethod

KeepFloat = Callable[[NodeOrigin], bool]
MakeQuantizer = Callable[[KeepFloat], Any]  # keep_float -> a PT2E quantizer that leaves those nodes float


def nothing_float(origin: NodeOrigin) -> bool:
    """The default keep-float predicate: every node the quantizer knows is quantized."""
    return False


def observer(method: CalibrationMethod):
    """The activation observer class of a calibration method."""
    from torchao.quantization.pt2e.observer import HistogramObserver, MinMaxObserver

    return {CalibrationMethod.HISTOGRAM: HistogramObserver, CalibrationMethod.MINMAX: MinMaxObserver}[method]


def observed_by(config, method: CalibrationMethod):
    """A copy of a quantizer's (frozen dataclass) config whose activations `method` observes;
    the config itself, often a cached object, is not touched."""
    ctr = observer(method).with_args(eps=2**-12)
    return dataclasses.replace(
        config, input_activation=dataclasses.replace(config.input_activation, observer_or_fake_quant_ctr=ctr),
        output_activation=dataclasses.replace(config.output_activation, observer_or_fake_quant_ctr=ctr))


def origin(node) -> NodeOrigin:
    """Where an FX node came from, from its `nn_module_stack` metadata."""
    stack = list((node.meta.get("nn_module_stack") or {}).values())
    op = str(node.target).split(".")[1] if node.op == "call_function" and "." in str(node.target) else node.op
    groups = node.args[6] if op == "conv2d" and len(node.args) > 6 else 1
    return NodeOrigin(tuple(path for path, _ in stack if path), tuple(str(kind) for _, kind in stack), op, groups)


def _prepare(program, make: MakeQuantizer, keep_float: KeepFloat):
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    return prepare_pt2e(program.module(), make(keep_float))


def _observers(prepared) -> dict[str, torch.nn.Module]:
    """Observed node name -> its observer module."""
    return {node.args[0].name: getattr(prepared, node.target) for node in prepared.graph.nodes
            if node.op == "call_module" and node.target.startswith("activation_post_process")
            and node.args and hasattr(node.args[0], "name")}


@torch.no_grad()
def _calibrate(prepared, images: np.ndarray, batch: int | None) -> None:
    for chunk in chunks(images, batch):
        prepared(torch.from_numpy(chunk))


def _convert(prepared, fold: bool) -> torch.fx.GraphModule:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    return convert_pt2e(prepared, fold_quantize=fold)


def quantize(program, images: np.ndarray, batch: int | None, make: MakeQuantizer,
             keep_float: KeepFloat = nothing_float, fold: bool = True) -> torch.fx.GraphModule:
    """The converted (q/dq) module of the fp32 `torch.export` program, calibrated on `images`."""
    prepared = _prepare(program, make, keep_float)
    _calibrate(prepared, images, batch)
    return _convert(prepared, fold)


class Calibrated:
    """One calibration pass over a fully annotated program, for trying many `keep_float`
    choices cheaply. Observers see float values only, so what they record does not depend
    on which nodes are kept float, with one exception: an observer shared by an op and its
    input (e.g. a mean) records both, and which pairs share one changes with what is kept.
    `convert` is therefore close to, not bit-equal with, `quantize` with the same choice;
    artifacts are built with `quantize`."""

    def __init__(self, program, images: np.ndarray, batch: int | None, make: MakeQuantizer, fold: bool = True):
        self.program, self.images, self.batch, self.make, self.fold = program, images, batch, make, fold
        full = _prepare(program, make, nothing_float)
        _calibrate(full, images, batch)
        self.states = {name: obs.state_dict() for name, obs in _observers(full).items()}

    def convert(self, keep_float: KeepFloat = nothing_float) -> torch.fx.GraphModule:
        """The converted (q/dq) module, nodes covered by `keep_float` left float."""
        prepared = _prepare(self.program, self.make, keep_float)
        observers = _observers(prepared)
        if set(observers) <= set(self.states):
            for name, obs in observers.items():
                obs.load_state_dict(self.states[name])
        else:  # an observer the full program did not have: observe again
            _calibrate(prepared, self.images, self.batch)
        return _convert(prepared, self.fold)


def _dequantized(node) -> str:
    """The node that holds `node`'s value after quantization (its dequantize), or itself."""
    def users(n, word):
        return [u for u in n.users if word in str(u.target)]

    quant = [u for u in users(node, "quantize_per_tensor") if "dequantize" not in str(u.target)]
    deq = users(quant[0], "dequantize") if quant else []
    return deq[0].name if deq else node.name


class BlockProbe(torch.fx.Interpreter):
    """Runs a converted module and keeps the (dequantized) output of each block; blocks
    map to the fp32 program's node names (export/graph.py `block_outputs`)."""

    def __init__(self, module: torch.fx.GraphModule, block_outputs: dict[str, str]):
        super().__init__(module)
        nodes = {n.name: n for n in module.graph.nodes}
        self.names = {block: _dequantized(nodes[name]) for block, name in block_outputs.items() if name in nodes}
        self._wanted = set(self.names.values())
        self._seen: dict[str, torch.Tensor] = {}

    def run_node(self, n):
        out = super().run_node(n)
        if n.name in self._wanted:
            self._seen[n.name] = out.detach().clone()
        return out

    @torch.no_grad()
    def _blocks(self, chunk: np.ndarray) -> dict[str, np.ndarray]:
        self._seen = {}
        self.run(torch.from_numpy(chunk))
        return {block: self._seen[name].numpy() for block, name in self.names.items()}

    def outputs(self, images: np.ndarray, batch: int | None) -> dict[str, np.ndarray]:
        """Block name -> its outputs over `images`."""
        return run_in_batches(self._blocks, images, batch)
