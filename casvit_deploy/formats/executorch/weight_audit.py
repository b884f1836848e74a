"""Localization for ExecuTorch `.pte` files by auditing their stored weights.

Why not activations: the XNNPACK delegate runs the whole network as one opaque call.
ExecuTorch's ETDump (with a debug buffer) records per-op intermediate outputs only for
ops on portable kernels; inside the delegate it records per-op timings, not values.

What is checkable: the XNNPACK serializer stores every constant in the program's named
data under the sha256 of its bytes. So (1) a constant whose bytes no longer hash to its
key was altered after export, and (2) each key can be traced to the reference weight
(same deploy-form rewrite, in one of the layouts XNNPACK stores) that hashes to it,
which names its block. Constants the delegate takes as inputs (a backbone's output
scale-and-shift) stay in the program's constant buffers; they are keyed here by the
sha256 of their bytes, so an altered one shows as not stored. A reference weight found
nowhere in the file is reported too.
This locates wrong or corrupted weights, not arithmetic differences inside kernels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.model.blocks import FINAL_OUTPUT, block_names
from casvit_deploy.numerics.localization import BlockResult, Localization
from casvit_deploy.rewrite import PASS_NAMES, check_pass_names, deploy_form

METHOD = "weight audit: stored constants (sha256-keyed XNNPACK data, program constants) traced to reference weights"
# XNNPACK keeps most tensors as they are; convolutions as OHWI, depthwise as IHWO.
LAYOUTS = {
    "as-is": lambda t: t,
    "ohwi": lambda t: t.permute(0, 2, 3, 1) if t.dim() == 4 else None,
    "ihwo": lambda t: t.permute(1, 2, 3, 0) if t.dim() == 4 else None,
}


def stored_constants(artifact: Path) -> dict[str, bytes]:
    """sha256 key -> stored bytes: the program's named data under its own keys, and its
    constant buffers under the sha256 of their bytes."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    pte = deserialize_pte_binary(Path(artifact).read_bytes())
    stored = {hashlib.sha256(data).hexdigest(): data
              for data in (bytes(b.storage) for b in pte.program.constant_buffer) if data}
    if pte.named_data is not None:
        named = pte.named_data
        stored |= {key: bytes(named.buffers[entry.buffer_index]) for key, entry in named.pte_data.items()}
    return stored


def deployed_model(loaded, manifest: Manifest) -> nn.Module:
    """The module the exporter lowered: the same rewrite passes as the manifest records."""
    check_pass_names(manifest.passes)
    disabled = tuple(p for p in PASS_NAMES if p not in manifest.passes)
    return deploy_form(loaded.model, manifest.form, disabled)[0]


def _candidates(tensor: torch.Tensor) -> Iterator[tuple[str, np.ndarray]]:
    for dtype in (torch.float32, torch.float16):
        for layout, make in LAYOUTS.items():
            view = make(tensor.detach().to(dtype))
            if view is not None:
                yield layout, view.contiguous().numpy()


def _owner(name: str, blocks: list[str]) -> str:
    """The block a parameter belongs to (head and distillation head both count as head)."""
    if name.startswith(("head.", "dist_head.", "norm.")):
        return FINAL_OUTPUT
    return max((b for b in blocks if name.startswith(b + ".")), key=len, default=FINAL_OUTPUT)


def _audit_tensor(name: str, tensor: torch.Tensor, stored: dict[str, bytes]) -> tuple[str, float | None, str]:
    """(status, relative error of the stored copy, note) for one reference weight."""
    for layout, array in _candidates(tensor):
        key = hashlib.sha256(array.tobytes()).hexdigest()
        if key not in stored:
            continue
        data = stored[key]
        if hashlib.sha256(data).hexdigest() == key:
            return "ok", 0.0, ""
        if len(data) != array.nbytes:
            return "diverged", None, f"{name}: stored size {len(data)} B, expected {array.nbytes} B"
        found = np.frombuffer(data, dtype=array.dtype).reshape(array.shape).astype(np.float64)
        err = float(np.max(np.abs(found - array)))
        scale = float(np.max(np.abs(array))) or 1.0
        return "diverged", err / scale, f"{name} ({layout}): stored bytes altered after export, max abs {err:.3g}"
    return "diverged", None, f"{name}: not stored in the artifact (no bit-exact copy in any known layout)"


def audit_weights(artifact: Path, loaded, manifest: Manifest, engine: str, input_set: str, sample: str) -> Localization:
    """Per-block weight audit of an ExecuTorch program against the reference weights."""
    stored = stored_constants(artifact)
    blocks = block_names(loaded.model)
    loc = Localization(engine, input_set, sample, METHOD)
    if not stored:
        loc.blocks = [BlockResult(b, None, "unmapped") for b in blocks]
        loc.note = "the program stores no constants; nothing to audit"
        return loc
    results: dict[str, list[tuple[str, float | None, str]]] = {b: [] for b in blocks}
    model = deployed_model(loaded, manifest)
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.is_floating_point() and tensor.numel() > 0:
            results[_owner(name, blocks)].append(_audit_tensor(name, tensor, stored))
    for block in blocks:
        loc.blocks.append(_block_result(block, results[block]))
    bad = [b.block for b in loc.blocks if b.status == "diverged"]
    loc.first_divergent = bad[0] if bad else None
    loc.note = ("every block's weights are stored intact: the difference arises in computation, which the "
                "XNNPACK delegate does not expose per block") if not bad else ""
    return loc


def _block_result(block: str, audits: list[tuple[str, float | None, str]]) -> BlockResult:
    if not audits:
        return BlockResult(block, None, "ok", note="no weights")
    bad = [a for a in audits if a[0] != "ok"]
    errors = [a[1] for a in audits if a[1] is not None]
    note = "; ".join(a[2] for a in bad[:3]) or f"{len(audits)} weights intact"
    return BlockResult(block, f"{len(audits)} weights", "diverged" if bad else "ok",
                       rel_err=max(errors) if errors else None, note=note)
