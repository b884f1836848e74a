"""The input-size type: parsing, validation, names, JSON records, and the preprocessing and
manifest fields built on it (non-square sizes; schema-2 manifests with integer sizes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from casvit_deploy.artifacts.manifest import SCHEMA
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.errors import UsageError
from casvit_deploy.model import check_resolution
from casvit_deploy.parity.inputs import build_input_sets, preprocess
from casvit_deploy.pipeline import artifact_stem, default_out_dir
from casvit_deploy.settings import Form, Precision, Resolution
from casvit_deploy.store import manifests
from tests.manifest_helpers import minimal_manifest


@pytest.mark.parametrize("value, expected", [
    (224, (224, 224)), ("224", (224, 224)), ("512x768", (512, 768)), ("512X768", (512, 768)),
    (" 64 x 96 ", (64, 96)), ("224x224", (224, 224)), ("32x2048", (32, 2048)),
    (Resolution(64, 96), (64, 96)),
])
def test_parse(value, expected):
    size = Resolution.parse(value)
    assert (size.height, size.width) == expected
    assert Resolution.parse(str(size)) == size


@pytest.mark.parametrize("value", [100, "100", "512x770", "0x64", "64x4096", "2080", "", "x64", "64x", "64x96x3",
                                   "-64", 224.0, True, None, "abc"])
def test_invalid_sizes_are_refused_naming_the_option(value):
    with pytest.raises(UsageError, match=r"^--size .* is not a multiple of 32 between 32 and 2048") as err:
        Resolution.parse(value, "--size")
    assert "\n" not in str(err.value)


def test_constructor_validates_too():
    with pytest.raises(UsageError):
        Resolution(64, 100)
    assert check_resolution("64x96") == Resolution(64, 96)


def test_names_and_records():
    square, oblong = Resolution(224, 224), Resolution(512, 768)
    assert (str(square), str(oblong)) == ("224", "512x768")
    assert oblong.shape(2) == (2, 3, 512, 768) and oblong.to_record() == {"height": 512, "width": 768}
    assert Resolution.from_record(oblong.to_record()) == oblong and Resolution.from_record(224) == square
    with pytest.raises(UsageError):
        Resolution.from_record({"height": 512})
    assert artifact_stem("xs", oblong, Precision.FP32) == "casvit_xs_512x768_fp32"
    assert artifact_stem("xs", 224, Precision.FP32) == "casvit_xs_224_fp32"
    assert artifact_stem("xs", oblong, Precision.FP32, backbone=True) == "casvit_xs_512x768_fp32_backbone"
    assert artifact_stem("s", oblong, Precision.FP32, Form.UPSTREAM, dynamic_shape=True) == \
        "casvit_s_512x768_fp32_upstream_dynamic_hw"
    assert artifact_stem("s", 224, Precision.FP32, batch=4, dynamic_batch=True, dynamic_shape=True) == \
        "casvit_s_224_fp32_dynamic_bhw_b4"
    assert default_out_dir("xs", oblong, Precision.FP16, backbone=True).name == "xs_512x768_fp16_backbone"


def test_square_preprocessing_is_the_reference_transform():
    assert Preprocessing.for_resolution(224) == Preprocessing(256, "shorter-side", Resolution(224, 224))
    assert Preprocessing.for_resolution(384) == Preprocessing(384, "square", Resolution(384, 384))
    assert Preprocessing.for_resolution("512x768") == Preprocessing(None, "cover", Resolution(512, 768))


@pytest.mark.parametrize("photo_hw, size", [((300, 400), "64x96"), ((300, 400), "96x64"), ((400, 300), "64x96"),
                                            ((120, 500), "64x96"), ((300, 400), 64)])
def test_photographs_are_covered_then_centre_cropped(photo_hw, size):
    """Non-square sizes keep the aspect ratio: scaled just enough to cover H x W, then the
    centre crop; a horizontal ramp stays a ramp (nothing is stretched or flipped)."""
    h, w = photo_hw
    ramp = np.tile(np.linspace(0, 1, w), (h, 1))
    photo = np.stack([ramp] * 3, axis=-1)
    pre = Preprocessing.for_resolution(size)
    out = preprocess(photo, pre)
    assert out.shape == (3, pre.crop.height, pre.crop.width)
    row = out[0, out.shape[1] // 2]
    assert np.all(np.diff(row) > -1e-3)  # still increasing left to right


def test_cover_keeps_the_whole_tighter_side():
    """A 300x400 photo into 64x96: the width is the tighter side (96/400 > 64/300), so the
    photo is scaled to 72x96, which covers 64x96, and the centre 64 rows are kept (4 rows
    cropped at the top and 4 at the bottom)."""
    h, w = 300, 400
    rows = np.tile((np.arange(h)[:, None] + 0.5) / h, (1, w))  # each row holds its relative height
    photo = np.stack([rows] * 3, axis=-1)
    out = preprocess(photo, Preprocessing.for_resolution("64x96"))
    column = out[0, :, 48] * 0.229 + 0.485  # undo the normalization of the red channel
    assert column[0] == pytest.approx(4.5 / 72, abs=0.01) and column[-1] == pytest.approx(67.5 / 72, abs=0.01)


def test_random_and_photo_sets_have_the_size():
    sets = build_input_sets("both", "64x96", samples=2)
    assert [s.images.shape for s in sets] == [(2, 3, 64, 96), (2, 3, 64, 96)]


def test_manifest_records_sizes_as_height_and_width(tmp_path):
    manifest = minimal_manifest(Resolution(64, 96))
    data = manifest.to_dict()
    assert data["resolution"] == {"height": 64, "width": 96} and data["schema"] == SCHEMA
    assert data["preprocessing"]["crop"] == {"height": 64, "width": 96}
    assert data["preprocessing"]["resize"] is None and data["preprocessing"]["resize_mode"] == "cover"
    assert manifests.parse(json.loads(json.dumps(data))) == manifest


def test_schema_2_manifests_with_integer_sizes_are_still_read():
    data = minimal_manifest(64).to_dict()
    data |= {"schema": 2, "resolution": 64}
    del data["evaluations"]  # schema 4's
    data["preprocessing"] |= {"crop": 64}
    for spec in data["outputs"] + data["inputs"]:
        spec.pop("stride")
    manifest = manifests.parse(data)
    assert manifest.resolution == Resolution(64, 64) and manifest.preprocessing.crop == Resolution(64, 64)
    assert not manifest.dynamic_shape and manifest.outputs[0].stride is None
