"""A small valid manifest, for tests of the manifest contract without an export."""

from __future__ import annotations

from casvit_deploy.artifacts.manifest import Manifest
from casvit_deploy.artifacts.preprocessing import Preprocessing
from casvit_deploy.artifacts.records import TensorSpec
from casvit_deploy.formats.onnx.details import OnnxDetails
from casvit_deploy.formats.onnx.options import OnnxOptions
from casvit_deploy.model import RANDOM_WEIGHTS_NOTE
from casvit_deploy.settings import Form, Precision, Resolution


def minimal_manifest(resolution: Resolution | int = 64) -> Manifest:
    """What an ONNX export of XS with random weights records (no block outputs)."""
    resolution = Resolution.parse(resolution)
    return Manifest(
        format="onnx", file="a.onnx", size_bytes=0, sha256="0" * 64,
        inputs=[TensorSpec("image", resolution.shape(1), "float32", "NCHW")],
        outputs=[TensorSpec("logits", (1, 1000), "float32", "NC")],
        preprocessing=Preprocessing.for_resolution(resolution), variant="xs", num_classes=1000,
        distillation=False, weights=RANDOM_WEIGHTS_NOTE, checkpoint=None, seed=0, form=Form.DEPLOY, passes=[],
        precision=Precision.FP32, resolution=resolution, batch=1, dynamic_batch=False, options=OnnxOptions(),
        block_outputs={}, tools={"torch": "2.13.0"}, export_seconds=1.0, exported_at="2026-01-01T00:00:00+0000",
        details=OnnxDetails())
