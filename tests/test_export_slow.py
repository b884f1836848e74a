"""The larger variant at a non-224 resolution, every format, and upstream-form ExecuTorch
delegation (slow: minutes on two CPU cores)."""

from __future__ import annotations

import numpy as np
import pytest

from casvit_deploy.errors import ExportError
from casvit_deploy.formats import FORMATS
from casvit_deploy.formats.executorch.options import ExecuTorchOptions
from casvit_deploy.model import load_model
from casvit_deploy.pipeline import export_model
from casvit_deploy.runtime.eager import EagerRunner
from casvit_deploy.settings import Form, Resolution
from casvit_deploy.store.runners import open_runner

pytestmark = pytest.mark.slow
RES = 160
FP32_RTOL = 1e-4


@pytest.fixture(scope="module")
def t_loaded(checkpoint_factory):
    return load_model(checkpoint_factory("t", seed=11, distillation=True, ema=False, input_size=RES))


@pytest.mark.parametrize("fmt", FORMATS)
def test_t_exports_at_native_non_224_resolution(fmt, t_loaded, tmp_path):
    assert t_loaded.native_resolution == Resolution(RES, RES) and t_loaded.checkpoint.distillation
    result = export_model(t_loaded, fmt, tmp_path, resolution=RES, precision="fp16" if fmt == "coreml" else "fp32")
    manifest = result.manifest
    assert manifest.variant == "t" and manifest.distillation and manifest.resolution == Resolution(RES, RES)
    assert "merge_heads" in manifest.passes and len(manifest.block_outputs) == 1 + 15 + 3 + 1
    if fmt == "coreml":
        assert "batch_norm" not in manifest.details.mil_ops
        return
    image = np.random.default_rng(3).standard_normal((1, 3, RES, RES)).astype(np.float32)
    with open_runner(result.artifact) as runner:
        got = runner.run(image)["logits"]
    ref = EagerRunner(t_loaded.model).run(image)["logits"]
    assert np.abs(got - ref).max() / np.abs(ref).max() < FP32_RTOL


def test_upstream_executorch_refused_unless_portable_allowed(tmp_path):
    """The upstream graph's qkv chunk stays on portable kernels: refused, then accepted."""
    loaded = load_model(variant="xs")
    with pytest.raises(ExportError, match=r"not delegated to xnnpack .*split_with_sizes.*--allow-portable"):
        export_model(loaded, "executorch", tmp_path, resolution=64, form=Form.UPSTREAM)
    assert not list(tmp_path.iterdir())
    result = export_model(loaded, "executorch", tmp_path, resolution=64, form=Form.UPSTREAM,
                          options=ExecuTorchOptions(allow_portable=True))
    assert result.manifest.details.delegation["portable_nodes"] > 0 and result.manifest.form is Form.UPSTREAM
    assert result.artifact.name == "casvit_xs_64_fp32_upstream.pte"
