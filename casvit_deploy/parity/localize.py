"""Per-block localization: where does the artifact first diverge from the reference?

Both sides run the same single sample. The reference records every block's output with
forward hooks; the artifact exposes the tensor that its manifest's "block_outputs" maps
each block to (ONNX value, CoreML MIL variable, ...). A block is divergent when
max|out - ref| / max|ref| exceeds the threshold `block_rtol` (int8: when its SQNR falls
below `block_min_sqnr_db`), or it holds NaN/Inf.
"""

from __future__ import annotations

import numpy as np

from casvit_deploy.model.blocks import block_names
from casvit_deploy.numerics import Thresholds
from casvit_deploy.numerics.localization import Localization, compare_block
from casvit_deploy.runtime.eager import EagerRunner


def tensor_names(fmt: str, runner, block_outputs: dict[str, str]) -> tuple[dict[str, str | None], str]:
    """Each block's tensor inside the artifact (None where it cannot be found), and a note."""
    if not runner.supports_intermediates:
        return {b: None for b in block_outputs}, f"{fmt} runner exposes no intermediate tensors"
    if not block_outputs:
        return {}, "manifest has no block_outputs; re-export the artifact"
    return runner.block_tensors(block_outputs), ""


def localize(fmt: str, runner, reference: EagerRunner, image: np.ndarray, block_outputs: dict[str, str],
             limits: Thresholds, input_set: str, sample: str) -> Localization:
    """Compare every block's output on `image` (one sample, NCHW) and name the first divergent."""
    order = block_names(reference.model)
    names, note = tensor_names(fmt, runner, {b: block_outputs[b] for b in order if b in block_outputs})
    loc = Localization(runner.description, input_set, sample, f"{fmt} intermediate tensors", note=note)
    wanted = {b: n for b, n in names.items() if n is not None}
    outs = runner.run_intermediates(image, list(wanted.values())) if wanted else {}
    refs = reference.run_intermediates(image, order)
    for block in order:
        tensor = names.get(block)
        loc.blocks.append(compare_block(block, tensor, outs.get(tensor) if tensor else None, refs[block], limits))
    diverged = [b.block for b in loc.blocks if b.status == "diverged"]
    loc.first_divergent = diverged[0] if diverged else None
    unmapped = [b.block for b in loc.blocks if b.status == "unmapped"]
    if unmapped and not loc.note:
        loc.note = f"{len(unmapped)} of {len(order)} blocks have no tensor in the artifact"
    return loc
