"""Where an ExecuTorch program diverges, although the XNNPACK delegate hides every block
output: an fp32 program's stored weights are audited against the reference's
(weight_audit.py); an int8 program's module is rebuilt from its manifest and read block by
block (simulated_blocks.py)."""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.numerics.localization import Localization
from casvit_deploy.settings import Precision


def localize(artifact: Path, loaded, manifest, runner, reference, image, thresholds, input_set: str,
             sample: str) -> Localization:
    """The per-block table of `image` (one batch of the sample `sample` from `input_set`)."""
    if manifest.precision is Precision.INT8:
        from casvit_deploy.formats.executorch.simulated_blocks import simulate_blocks

        return simulate_blocks(loaded, manifest, runner, reference, image, thresholds, input_set, sample)
    from casvit_deploy.formats.executorch.weight_audit import audit_weights

    return audit_weights(artifact, loaded, manifest, runner.description, input_set, sample)
