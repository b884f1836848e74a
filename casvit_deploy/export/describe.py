"""What each artifact input and output is, in words for app developers: written into the
manifest, CoreML's model description (Xcode) and ONNX's doc strings (Netron)."""

from __future__ import annotations

from casvit_deploy.artifacts.preprocessing import Preprocessing

OUTPUTS = {
    "logits": "raw class scores (logits), one row of {n} per image; softmax gives the probabilities",
    "probabilities": "probability of each of the {n} classes (softmax of the logits, sums to 1), by class label",
    "label": "the most likely class label (the top probability)",
}


def input_text(preprocessing: Preprocessing) -> str:
    """What to feed the image input."""
    return preprocessing.app_feeds


def output_text(kind: str, num_classes: int, stride: int | None = None) -> str:
    """What an output of `kind` ("logits", "probabilities", "label", or a backbone's feature
    map at `stride`) holds."""
    if kind in OUTPUTS:
        return OUTPUTS[kind].format(n=num_classes)
    return f"feature map at 1/{stride} of the input's height and width (NCHW), for a detection or segmentation neck"
