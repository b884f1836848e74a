"""Per-block error of an int8 ExecuTorch program, read from its rebuilt PT2E simulation.

The XNNPACK delegate hides every intermediate tensor (weight_audit.py), and an int8
program stores quantized weights, so neither block outputs nor a weight audit come from
the `.pte` itself. What can be rebuilt exactly is the module it was lowered from: the
same deploy form, quantizer settings, calibration set (checked against its recorded
sha256) and kept-float targets give the same quantize/dequantize module
(pt2e.py, quantize/pt2e.py), which runs here block by block. Its logits are compared with the
`.pte`'s on the same sample and the cosine is stated, which ties the table to the
artifact (XNNPACK's int8 kernels round differently from the simulation's float arithmetic).
"""

from __future__ import annotations

import numpy as np

from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.data.calibration import calibration_set
from casvit_deploy.formats.executorch import pt2e
from casvit_deploy.formats.executorch.weight_audit import deployed_model
from casvit_deploy.model.blocks import FINAL_OUTPUT, block_names
from casvit_deploy.model.program import export_program
from casvit_deploy.numerics import Thresholds, compare
from casvit_deploy.numerics.localization import BlockResult, Localization, compare_block
from casvit_deploy.quantize.pt2e import BlockProbe
from casvit_deploy.quantize.targets import keeps_float
from casvit_deploy.settings import CalibrationMethod

METHOD = "PT2E q/dq simulation rebuilt from the manifest (block SQNR vs fp32)"


def _unmapped(loc: Localization, blocks: list[str], note: str) -> Localization:
    loc.blocks = [BlockResult(b, None, "unmapped") for b in blocks]
    loc.note = note
    return loc


def simulate_blocks(loaded, manifest: Manifest, runner, reference, image: np.ndarray, limits: Thresholds,
                    input_set: str, sample: str) -> Localization:
    """Each block of the rebuilt int8 module on `image` (one batch) against the reference."""
    order = block_names(loaded.model)
    loc = Localization(runner.description, input_set, sample, METHOD)
    record, options = manifest.quantization, manifest.options.int8
    if record is None or options is None:
        return _unmapped(loc, order, "the manifest has no quantization record; re-export the artifact")
    calibration = calibration_set(manifest.preprocessing, options.calibration, options.calibration_samples)
    if calibration.sha256 != record.calibration.sha256:
        return _unmapped(loc, order, "the calibration set is no longer the one recorded (sha256 differs); "
                                     "cannot rebuild the quantized module")
    batch = None if manifest.dynamic_batch else manifest.batch
    program = export_program(deployed_model(loaded, manifest), manifest.batch, manifest.resolution,
                             manifest.dynamic_batch)
    converted = pt2e.quantize(program, calibration.images, batch, CalibrationMethod(record.calibration.method),
                              keeps_float([k.target for k in record.kept_float]))
    probe = BlockProbe(converted, manifest.block_outputs)
    outs, refs = probe.outputs(image, batch), reference.run_intermediates(image, order)
    loc.blocks = [compare_block(b, probe.names.get(b), outs.get(b), refs[b], limits) for b in order]
    diverged = [b.block for b in loc.blocks if b.status == "diverged"]
    loc.first_divergent = diverged[0] if diverged else None
    tie = compare("logits", runner.run(image)["logits"], outs[FINAL_OUTPUT]).cosine if FINAL_OUTPUT in outs else None
    loc.note = (f"simulation vs .pte logits on this sample: cosine {tie:.6f}" if tie is not None
                else "the simulation has no final output to compare with the .pte")
    return loc
