"""Whole CAS-ViT programs through the MIL reference interpreter, against eager PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("coremltools")

from casvit_deploy.artifacts.preprocessing import Preprocessing  # noqa: E402
from casvit_deploy.model import load_model  # noqa: E402
from casvit_deploy.parity.inputs import image_set  # noqa: E402
from tests.mil_helpers import (  # noqa: E402
    corrupt_weight,
    cosine,
    eager_blocks,
    export_coreml,
    open_coreml,
    relative_error,
)

SMALL = 64
FP32_REL = 1e-4       # max |error| / max |reference|
FP16_MIN_COSINE = 0.999


@pytest.fixture(scope="session")
def artifact(tmp_path_factory):
    """artifact(variant, resolution, precision, rewrite=True, **options) -> (path, block_outputs), cached."""
    cache = {}

    def make(variant, resolution, precision, rewrite=True, **options):
        key = (variant, resolution, precision, rewrite, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = export_coreml(tmp_path_factory.mktemp("coreml"), variant, resolution, precision,
                                       rewrite, **options)
        return cache[key]

    return make


def random_images(n, resolution, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, resolution, resolution)).astype(np.float32)


def check_fp32(variant, resolution, rewrite, artifact):
    path, _ = artifact(variant, resolution, "fp32", rewrite)
    images = random_images(2, resolution)
    got = open_coreml(path).run(images)["logits"]
    want = eager_blocks(load_model(variant=variant).model, images, ["head"])["head"]
    assert got.dtype == np.float32 and got.shape == want.shape
    assert relative_error(got, want) < FP32_REL
    assert (got.argmax(1) == want.argmax(1)).all()


@pytest.mark.parametrize("rewrite", [True, False], ids=["deploy", "upstream"])
def test_fp32_program_matches_eager(rewrite, artifact):
    check_fp32("xs", SMALL, rewrite, artifact)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["xs", "s", "m", "t"])
def test_fp32_program_matches_eager_every_variant_224(variant, artifact):
    check_fp32(variant, 224, True, artifact)


@pytest.mark.slow
def test_fp32_upstream_program_matches_eager_t_224(artifact):
    check_fp32("t", 224, False, artifact)


def check_fp16(variant, resolution, artifact, rewrite=True):
    path, _ = artifact(variant, resolution, "fp16", rewrite)
    images = image_set(Preprocessing.for_resolution(resolution)).images
    runner = open_coreml(path)
    got = runner.run(images)["logits"]
    want = eager_blocks(load_model(variant=variant).model, images, ["head"])["head"]
    # the exporter casts an fp16 program's output to float32 inside the program
    assert runner.precision == "fp16" and got.dtype == (np.float32 if rewrite else np.float16)
    cosines = [cosine(g, w) for g, w in zip(got, want)]
    agree = float((got.argmax(1) == want.argmax(1)).mean())
    assert min(cosines) > FP16_MIN_COSINE
    assert relative_error(got, want) > FP32_REL / 10  # fp16-level, not fp32-level, error
    assert agree >= 0.8
    return cosines, agree


def test_fp16_program_shows_fp16_level_error_on_photos(artifact):
    check_fp16("xs", SMALL, artifact)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["xs", "t"])
@pytest.mark.parametrize("rewrite", [True, False], ids=["deploy", "upstream"])
def test_fp16_program_on_photos_224(variant, rewrite, artifact):
    check_fp16(variant, 224, artifact, rewrite)


@pytest.mark.parametrize("precision,rewrite", [("fp32", True), ("fp32", False), ("fp16", True)])
def test_block_vars_hold_each_blocks_output(precision, rewrite, artifact):
    """Every block maps to a MIL variable, and that variable's value is the block's output."""
    path, block_outputs = artifact("xs", SMALL, precision, rewrite)
    runner = open_coreml(path)
    mapping = runner.block_tensors(block_outputs)
    assert None not in mapping.values() and list(mapping) == list(block_outputs)
    image = random_images(1, SMALL, seed=3)
    values = runner.run_intermediates(image, list(mapping.values()))
    want = eager_blocks(load_model(variant="xs").model, image, list(mapping))
    tolerance = FP32_REL if precision == "fp32" else 5e-2
    for block, var in mapping.items():
        assert relative_error(values[var], want[block]) < tolerance, block


def test_corrupted_weight_diverges_at_its_block(artifact, tmp_path):
    path, block_outputs = artifact("xs", SMALL, "fp32")
    bad = corrupt_weight(path, "p_network_4_1_attn_dwc_weight", tmp_path / "bad.mlpackage")
    image = random_images(1, SMALL, seed=4)
    want = eager_blocks(load_model(variant="xs").model, image, list(block_outputs))
    good_out = open_coreml(path).run(image)["logits"]
    runner = open_coreml(bad)
    mapping = runner.block_tensors(block_outputs)
    values = runner.run_intermediates(image, list(mapping.values()))
    errors = {block: relative_error(values[var], want[block]) for block, var in mapping.items()}
    first_bad = next(block for block, err in errors.items() if err > 1e-3)
    assert first_bad == "network.4.1", errors
    assert relative_error(runner.run(image)["logits"], want["head"]) > 1e-2
    assert relative_error(good_out, want["head"]) < FP32_REL


def test_image_input_program_takes_normalized_images(artifact):
    """An image-input export: the runner turns the normalized image back into pixels."""
    path, _ = artifact("xs", SMALL, "fp32", image_input=True)
    runner = open_coreml(path)
    assert runner.input.kind == "image"
    images = image_set(Preprocessing.for_resolution(SMALL), samples=2).images
    want = eager_blocks(load_model(variant="xs").model, images, ["head"])["head"]
    assert relative_error(runner.run(images)["logits"], want) < FP32_REL
