"""Eager PyTorch as a Runner: the parity reference (upstream form, float32 by default).

With the classifier head its outputs are "probabilities" (softmax of the logits) and
"label" (their argmax, int64), as a classifier artifact reports them.

`run_intermediates` records each block's output with forward hooks, keyed by the block
names that exporters write into a manifest's "block_outputs" ("patch_embed",
"network.0.0", ..., "network.1" for an embedding, ..., "head" for the final output).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from casvit_deploy.model.blocks import FINAL_OUTPUT, block_names  # noqa: F401
from casvit_deploy.model.blocks import output_names as model_output_names
from casvit_deploy.settings import Head


def _outputs_by_name(result, names: Sequence[str]) -> dict[str, np.ndarray]:
    tensors = list(result) if isinstance(result, (list, tuple)) else [result]
    if len(names) != len(tensors):
        names = [f"output_{i}" for i in range(len(tensors))]
    return {name: t.detach().cpu().numpy() for name, t in zip(names, tensors)}


class EagerRunner:
    """`model` (not mutated) run on CPU in `dtype`; outputs named by `output_names` (default:
    the model's own, "logits" or "feat_s4" ... "feat_s32"; a classifier `head` names its
    own). The parity reference: it has the Runner's `run`, `run_intermediates` and
    `description`."""

    supports_intermediates = True

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float32,
                 output_names: Sequence[str] | None = None, head: Head = Head.LOGITS):
        self.model = copy.deepcopy(model).to(dtype).eval()
        self.dtype = dtype
        self.head = head
        self.output_names = (head.outputs if head is Head.CLASSIFIER
                             else tuple(output_names or model_output_names(model)))
        precision = str(dtype).removeprefix("torch.")
        self.description = f"PyTorch {torch.__version__} eager (CPU, {precision}, upstream form)"

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image)).to(self.dtype)

    @torch.no_grad()
    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        result = self.model(self._tensor(image))
        if self.head is Head.CLASSIFIER:
            probabilities = torch.softmax(result, dim=-1)
            result = (probabilities, probabilities.argmax(dim=-1))
        return _outputs_by_name(result, self.output_names)

    @torch.no_grad()
    def run_intermediates(self, image: np.ndarray, names: Iterable[str]) -> dict[str, np.ndarray]:
        """Each requested block's output ("head": the model's final output)."""
        wanted, captured = set(names), {}
        modules = dict(self.model.named_modules())
        unknown = wanted - set(modules) - {FINAL_OUTPUT}
        if unknown:
            raise KeyError(f"no such blocks in the model: {sorted(unknown)}")
        hooks = [modules[name].register_forward_hook(self._recorder(name, captured))
                 for name in wanted - {FINAL_OUTPUT}]
        try:
            result = self.model(self._tensor(image))
        finally:
            for hook in hooks:
                hook.remove()
        if FINAL_OUTPUT in wanted:
            captured[FINAL_OUTPUT] = result.detach().numpy()
        return captured

    @staticmethod
    def _recorder(name: str, captured: dict):
        def hook(_module, _inputs, output):
            captured[name] = output.detach().numpy()
        return hook
