"""int8 for S, M and T, and --auto-keep-float (slow: run with `pytest -m slow`).

Trained-like weights at 128x128 (model/trained_like.py), the default calibration set."""

from __future__ import annotations

import pytest

from casvit_deploy.artifacts.options import Int8Options
from casvit_deploy.formats.executorch.options import ExecuTorchOptions
from casvit_deploy.formats.litert.options import LiteRTOptions
from casvit_deploy.formats.onnx.options import OnnxOptions
from casvit_deploy.model import load_model
from casvit_deploy.numerics import defaults_for
from casvit_deploy.parity import check_artifact
from casvit_deploy.pipeline import export_model
from casvit_deploy.settings import Precision

pytestmark = pytest.mark.slow
RES = 128
OPTIONS = {"onnx": OnnxOptions, "executorch": ExecuTorchOptions, "litert": LiteRTOptions}
MODULES = {"executorch": "executorch", "litert": "litert_torch"}


def _export(trained_like_checkpoint, variant, fmt, folder, **int8):
    if fmt in MODULES:
        pytest.importorskip(MODULES[fmt])
    loaded = load_model(trained_like_checkpoint(variant, RES))
    options = OPTIONS[fmt](int8=Int8Options(**int8))
    return loaded, export_model(loaded, fmt, folder, resolution=RES, precision="int8", options=options)


@pytest.mark.parametrize("fmt", ["onnx", "executorch", "litert"])
@pytest.mark.parametrize("variant", ["s", "m", "t"])
def test_int8_of_every_variant_passes_parity(trained_like_checkpoint, variant, fmt, tmp_path):
    loaded, result = _export(trained_like_checkpoint, variant, fmt, tmp_path)
    assert result.manifest.quantization.agreement["cosine"] >= defaults_for(Precision.INT8).min_cosine
    report = check_artifact(result.artifact, loaded, record=False)
    assert report.passed, report.failures


@pytest.mark.parametrize("fmt", ["onnx", "executorch", "litert"])
def test_auto_keep_float_reaches_the_target_with_recorded_reasons(trained_like_checkpoint, fmt, tmp_path):
    target = 0.999
    loaded, result = _export(trained_like_checkpoint, "xs", fmt, tmp_path, auto_keep_float=True, min_cosine=target)
    q = result.manifest.quantization
    search = q.config["search"]
    assert search[0]["kept"] == ["residual-adds"] and search[-1]["cosine"] >= target
    assert all(s["cosine"] < target for s in search[:-1])  # it stopped at the first trial that reached it
    auto = [k for k in q.kept_float if k.reason.startswith("--auto-keep-float")]
    assert len(auto) == len(search) - 1 and all("cosine" in k.reason for k in auto)
    assert q.agreement["cosine"] >= target - 1e-3  # the artifact, not only the search's model
    if fmt == "onnx":  # the last trial is the published graph, measured on the same photographs
        assert q.agreement["cosine"] == pytest.approx(search[-1]["cosine"], abs=1e-6)
    report = check_artifact(result.artifact, loaded, record=False, per_block=True)
    assert report.passed, report.failures
