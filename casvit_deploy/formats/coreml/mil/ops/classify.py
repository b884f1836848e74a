"""The classifier op that `--labels` exports add after the logits."""

from __future__ import annotations

from casvit_deploy.formats.coreml.mil.registry import register


@register("classify", ("probabilities",))
def classify(probabilities, classes):
    """(top class, scores): the label is given as its index into `classes`, the per-class
    dictionary as the score tensor in class order."""
    return probabilities.argmax(dim=-1), probabilities
