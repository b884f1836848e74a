"""LiteRT (.tflite) at full size (slow: run with `pytest -m slow`): XS at 224 and the
four-output backbone, fp32 and int8, through LiteRT's own interpreter (tests/litert_helpers.py,
none of this project's runner code) on the bundled photographs against the independent
PyTorch reference (tests/reference_forward.py), with trained-like weights
(model/trained_like.py, DESIGN.md); int8 size against fp32; fp16 weights; NHWC input and a
non-square backbone. Their fast siblings (same code paths at 32x32 and on a tiny model):
tests/test_litert.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from casvit_deploy.artifacts.options import Int8Options
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.data.calibration import calibration_set
from casvit_deploy.model.loading import LoadedModel
from casvit_deploy.model.trained_like import trained_like_model
from casvit_deploy.parity import check_artifact
from casvit_deploy.pipeline import export_model
from casvit_deploy.settings import Resolution
from tests.litert_helpers import (
    cosine,
    interpreter_outputs,
    photographs,
    reference_outputs,
)

pytest.importorskip("ai_edge_litert", reason="the [litert] extra is not installed")
pytestmark = pytest.mark.slow
FP32_ATOL = 1e-4
INT8_MIN_COSINE = 0.99
INT8_MAX_SIZE = 0.30  # of the fp32 file


def _trained_like(resolution: str, backbone: bool) -> LoadedModel:
    images = torch.from_numpy(calibration_set(Preprocessing.for_resolution(Resolution.parse(resolution))).images)
    return LoadedModel(trained_like_model("xs", images, 0, fork_feat=backbone), "xs", None, 0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """get(kind, resolution, precision, layout) -> (loaded model, export result), each made once."""
    from casvit_deploy.formats.litert.options import Layout, LiteRTOptions

    models, done = {}, {}

    def get(kind: str, resolution: str, precision: str, layout: str = "nchw"):
        key = (kind, resolution, precision, layout)
        if key not in done:
            model_key = (kind, resolution)
            models.setdefault(model_key, _trained_like(resolution, kind == "backbone"))
            options = LiteRTOptions(input_layout=Layout(layout), int8=Int8Options() if precision == "int8" else None)
            folder = tmp_path_factory.mktemp("_".join(key))
            done[key] = models[model_key], export_model(models[model_key], "litert", folder, resolution=resolution,
                                                        precision=precision, options=options)
        return done[key]

    return get


def _own_interpreter(result, loaded, resolution: str, backbone: bool):
    images = photographs(resolution)
    return interpreter_outputs(result.artifact, images), reference_outputs(loaded.model, images, backbone)


@pytest.mark.parametrize("kind, resolution, layout", [("classifier", "224", "nchw"), ("backbone", "224", "nchw"),
                                                      ("backbone", "64x96", "nhwc"), ("classifier", "160x224", "nhwc")])
def test_fp32_is_within_1e_4_of_the_reference_in_litert_own_interpreter(exported, kind, resolution, layout):
    loaded, result = exported(kind, resolution, "fp32", layout)
    got, ref = _own_interpreter(result, loaded, resolution, kind == "backbone")
    assert sorted(got) == sorted(ref)
    for name in ref:
        assert got[name].shape == ref[name].shape and np.abs(got[name] - ref[name]).max() <= FP32_ATOL, name
    spec = result.manifest.inputs[0]
    height, width = Resolution.parse(resolution).height, Resolution.parse(resolution).width
    assert spec.shape == ((1, height, width, 3) if layout == "nhwc" else (1, 3, height, width))
    assert result.manifest.details.load_check["blocks_missing"] == []


@pytest.mark.parametrize("kind", ["classifier", "backbone"])
def test_int8_agrees_is_real_int8_and_a_third_of_fp32(exported, kind):
    loaded, fp32 = exported(kind, "224", "fp32")
    _, int8 = exported(kind, "224", "int8")
    got, ref = _own_interpreter(int8, loaded, "224", kind == "backbone")
    for name in ref:
        assert cosine(got[name], ref[name]) >= INT8_MIN_COSINE, name
    assert int8.manifest.size_bytes <= INT8_MAX_SIZE * fp32.manifest.size_bytes
    details = int8.manifest.details
    assert details.ops["verdict"] == "int8" and details.ops["compute"]["CONV_2D"] == {"INT8": 115}
    assert details.io_quantization["image"]["dtype"] == "int8" and "scale" in details.io_quantization["image"]
    assert details.delegate["outside"] == {"GELU": 20}  # XNNPACK has no int8 GELU: 21 partitions
    report = check_artifact(int8.artifact, loaded, record=False, per_block=True)
    assert report.passed, report.failures
    assert all(b.status == "ok" for b in report.localization.blocks)


def test_fp16_weights_halve_the_file_and_pass_fp16_parity(exported):
    loaded, fp32 = exported("classifier", "224", "fp32")
    _, fp16 = exported("classifier", "224", "fp16")
    assert fp16.manifest.details.ops["verdict"] == "fp16-weights" and fp16.manifest.details.fp16_weights
    assert fp16.manifest.size_bytes <= 0.55 * fp32.manifest.size_bytes
    got, ref = _own_interpreter(fp16, loaded, "224", False)
    assert cosine(got["logits"], ref["logits"]) >= 0.9999
    assert check_artifact(fp16.artifact, loaded, record=False).passed


def test_int8_nhwc_classifier_takes_int8_nhwc_pixels(exported):
    loaded, result = exported("classifier", "64", "int8", "nhwc")
    assert result.manifest.inputs[0].shape == (1, 64, 64, 3) and result.manifest.inputs[0].dtype == "int8"
    assert result.manifest.preprocessing.layout == "NHWC"
    got, ref = _own_interpreter(result, loaded, "64", False)
    assert cosine(got["logits"], ref["logits"]) >= 0.98


def test_the_converter_without_the_quantizer_config_writes_fake_int8(exported):
    """The trap at full size: the same PT2E module converted without `quant_config`."""
    from functools import partial

    from casvit_deploy.export.graph import export_program
    from casvit_deploy.formats.litert import flatbuffer, quantizer
    from casvit_deploy.formats.litert.convert import _quiet
    from casvit_deploy.quantize import pt2e
    from casvit_deploy.rewrite import to_deploy
    from casvit_deploy.settings import CalibrationMethod

    loaded, fp32 = exported("classifier", "224", "fp32")
    program = export_program(to_deploy(loaded.model)[0], 1, Resolution(224, 224), False)
    images = photographs("224")[:4]
    module = pt2e.quantize(program, images, 1, partial(quantizer.quantizer, CalibrationMethod.MINMAX), fold=False)
    with _quiet():
        import litert_torch

        fake = bytes(litert_torch.convert(module, (torch.from_numpy(images[:1]),)).model_content())
    census = flatbuffer.census(fake)
    assert census["verdict"] == "fake-int8" and census["int8_compute_ops"] == 0
    assert len(fake) >= fp32.manifest.size_bytes  # bigger than fp32: float weights plus the q/dq pairs
