"""ExecuTorch int8: PyTorch 2 export quantization (PT2E) with XNNPACK's quantizer.

Weights int8 per-channel symmetric, activations int8 per-tensor affine, static ranges
observed on a calibration set (HistogramObserver by default: the range of least
quantization error; or min-max). `prepare_pt2e` inserts observers into the exported
graph, calibration runs the images through it, `convert_pt2e` turns the observers into
quantize/dequantize pairs that XNNPACK's partitioner lowers into int8 kernels. Modules
that a `keep_float` predicate covers are left unannotated, hence float.

The converted module is also a simulation of the lowered program (same quantization
parameters, float arithmetic between q/dq pairs), which `BlockProbe` reads block by block.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from casvit_deploy.data.batches import chunks, run_in_batches
from casvit_deploy.quantize.targets import NodeOrigin
from casvit_deploy.settings import CalibrationMethod

SCHEME = ("PT2E XNNPACKQuantizer: weights int8 per-channel symmetric; activations int8 per-tensor affine, "
          "static, calibrated")


def _observer(method: CalibrationMethod):
    from torchao.quantization.pt2e.observer import HistogramObserver, MinMaxObserver

    return {CalibrationMethod.HISTOGRAM: HistogramObserver, CalibrationMethod.MINMAX: MinMaxObserver}[method]


def quantization_config(method: CalibrationMethod):
    """XNNPACK's symmetric per-channel static config, activations observed by `method`."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config

    config = get_symmetric_quantization_config(is_per_channel=True)
    ctr = _observer(method).with_args(eps=2**-12)
    return dataclasses.replace(
        config, input_activation=dataclasses.replace(config.input_activation, observer_or_fake_quant_ctr=ctr),
        output_activation=dataclasses.replace(config.output_activation, observer_or_fake_quant_ctr=ctr))


def config_record(method: CalibrationMethod) -> dict:
    """The quantizer settings, as the manifest records them."""
    return {"quantizer": "executorch XNNPACKQuantizer (PT2E)", "weights": "int8 per-channel symmetric [-127, 127]",
            "activations": "int8 per-tensor affine [-128, 127], static", "observer": _observer(method).__name__}


def origin(node) -> NodeOrigin:
    """Where an FX node came from, from its `nn_module_stack` metadata."""
    stack = list((node.meta.get("nn_module_stack") or {}).values())
    op = str(node.target).split(".")[1] if node.op == "call_function" and "." in str(node.target) else node.op
    groups = node.args[6] if op == "conv2d" and len(node.args) > 6 else 1
    return NodeOrigin(tuple(path for path, _ in stack if path), tuple(str(kind) for _, kind in stack), op, groups)


def _prepare(program, method: CalibrationMethod, keep_float: Callable[[NodeOrigin], bool]):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(quantization_config(method))
    quantizer.set_filter_function(lambda node: not keep_float(origin(node)))
    return prepare_pt2e(program.module(), quantizer)


def _observers(prepared) -> dict[str, torch.nn.Module]:
    """Observed node name -> its observer module."""
    return {node.args[0].name: getattr(prepared, node.target) for node in prepared.graph.nodes
            if node.op == "call_module" and node.target.startswith("activation_post_process")
            and node.args and hasattr(node.args[0], "name")}


@torch.no_grad()
def quantize(program, images: np.ndarray, batch: int | None, method: CalibrationMethod,
             keep_float: Callable[[NodeOrigin], bool] = lambda origin: False) -> torch.fx.GraphModule:
    """The converted (q/dq) module of the fp32 `torch.export` program, calibrated on `images`."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    prepared = _prepare(program, method, keep_float)
    for chunk in chunks(images, batch):
        prepared(torch.from_numpy(chunk))
    return convert_pt2e(prepared)


class Calibrated:
    """One calibration pass over a fully annotated program, for trying many `keep_float`
    choices cheaply. Observers see float values only, so what they record does not depend
    on which nodes are kept float, with one exception: an observer shared by an op and its
    input (e.g. a mean) records both, and which pairs share one changes with what is kept.
    `convert` is therefore close to, not bit-equal with, `quantize` with the same choice;
    artifacts are built with `quantize`."""

    def __init__(self, program, images: np.ndarray, batch: int | None,
                 method: CalibrationMethod):
        self.program, self.images, self.batch, self.method = program, images, batch, method
        full = _prepare(program, method, lambda origin: False)
        self._calibrate(full)
        self.states = {name: obs.state_dict() for name, obs in _observers(full).items()}

    @torch.no_grad()
    def _calibrate(self, prepared) -> None:
        for chunk in chunks(self.images, self.batch):
            prepared(torch.from_numpy(chunk))

    def convert(self, keep_float: Callable[[NodeOrigin], bool] = lambda origin: False) -> torch.fx.GraphModule:
        """The converted (q/dq) module, nodes covered by `keep_float` left float."""
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        prepared = _prepare(self.program, self.method, keep_float)
        observers = _observers(prepared)
        if set(observers) <= set(self.states):
            for name, observer in observers.items():
                observer.load_state_dict(self.states[name])
        else:  # an observer the full program did not have: observe again
            self._calibrate(prepared)
        return convert_pt2e(prepared)


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
