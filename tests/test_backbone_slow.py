"""A backbone checkpoint in the mmdet layout, exported to every format at 512x768 and at 224:
every artifact's four outputs match eager PyTorch (fp32: max abs error <= 1e-4 relative to
max|ref|, and <= 1e-4 absolute on these O(1) features), and `casvit parity` passes on
random inputs and photographs (slow: many minutes on two CPU cores)."""

from __future__ import annotations

import numpy as np
import pytest

from casvit_deploy.model import load_model
from casvit_deploy.parity import check_artifact
from casvit_deploy.pipeline import export_model
from casvit_deploy.runtime.eager import EagerRunner
from casvit_deploy.settings import Resolution
from casvit_deploy.store.runners import open_runner

pytestmark = pytest.mark.slow
FEATURES = ["feat_s4", "feat_s8", "feat_s16", "feat_s32"]


@pytest.fixture(scope="module")
def loaded(xs_backbone_checkpoint):
    return load_model(xs_backbone_checkpoint)


@pytest.mark.parametrize("size", ["512x768", "224"])
@pytest.mark.parametrize("fmt, precision", [("onnx", "fp32"), ("executorch", "fp32"), ("coreml", "fp32"),
                                            ("coreml", "fp16")])
def test_backbone_exports_match_eager_and_pass_parity(fmt, precision, size, loaded, tmp_path):
    size = Resolution.parse(size)
    result = export_model(loaded, fmt, tmp_path, resolution=size, precision=precision)
    manifest = result.manifest
    assert [o.name for o in manifest.outputs] == FEATURES and manifest.resolution == size
    assert [o.shape[2:] for o in manifest.outputs] == [(size.height // s, size.width // s) for s in (4, 8, 16, 32)]
    x = np.random.default_rng(5).standard_normal(size.shape(1)).astype(np.float32)
    reference = EagerRunner(loaded.model).run(x)
    with open_runner(result.artifact) as runner:
        got = runner.run(x)
    for name in FEATURES:
        error = float(np.abs(got[name].astype(np.float64) - reference[name]).max())
        scale = float(np.abs(reference[name]).max())
        limit = 1e-4 if precision == "fp32" else 1e-2
        assert error <= limit * max(scale, 1.0), (name, error, scale)
    report = check_artifact(result.artifact, inputs="both", samples=4 if fmt == "coreml" else None)
    assert report.passed, report.failures
