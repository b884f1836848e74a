"""Where an export goes: the artifact's file name and the default output folder, both made
from the settings that shape the artifact.

A name says what was built: variant, input size, precision, then the model's kind (upstream
form, backbone, dynamic batch or size, fixed batch), then the format options that change
the artifact, each as the tag its options class gives (`FormatOptions.name_tags`), e.g.
casvit_xs_224_fp16_image_imagenet.mlpackage or casvit_xs_224_fp32_opset17.ort. Artifacts
made with other options therefore never take each other's names.
"""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.artifacts.format import Format
from casvit_deploy.export.base import ExportSettings
from casvit_deploy.formats import get_format
from casvit_deploy.paths import EXPORTS
from casvit_deploy.settings import Form, Precision, Resolution


def _kind_suffix(form: Form, backbone: bool) -> str:
    return ("" if form is Form.DEPLOY else "_upstream") + ("_backbone" if backbone else "")


def artifact_stem(variant: str, resolution: Resolution | int | str, precision: Precision, form: Form = Form.DEPLOY,
                  batch: int = 1, dynamic_batch: bool = False, *, dynamic_shape: bool = False,
                  backbone: bool = False, tags: tuple[str, ...] = ()) -> str:
    """e.g. casvit_xs_224_fp32, casvit_xs_512x768_fp32_backbone; suffixes mark upstream form,
    a backbone, fixed batch > 1, dynamic batch ("_dynamic") and dynamic height and width
    ("_dynamic_hw", both: "_dynamic_bhw"), then the option `tags`, each after a "_"."""
    stem = f"casvit_{variant}_{Resolution.parse(resolution)}_{Precision(precision).value}"
    stem += _kind_suffix(form, backbone)
    if dynamic_shape:
        stem += ("_dynamic_bhw" if dynamic_batch else "_dynamic_hw") + (f"_b{batch}" if batch > 1 else "")
    else:
        stem += "_dynamic" if dynamic_batch else (f"_b{batch}" if batch > 1 else "")
    return "_".join((stem, *tags))


def option_tags(fmt: Format, options) -> tuple[str, ...]:
    """The name tags of `fmt`'s `options`; a format converted from another's artifact (ORT from
    ONNX) is named by its source's options too, as they shape it (ORT's opset)."""
    tags = options.name_tags()
    if fmt.source is not None:
        tags = options.carried_to(get_format(fmt.source).options).name_tags() + tags
    return tuple(dict.fromkeys(tags))


def artifact_name(fmt: Format, variant: str, resolution: Resolution, settings: ExportSettings,
                  form: Form = Form.DEPLOY, backbone: bool = False) -> str:
    """The file (or package) name of the artifact `settings` ask `fmt` to build."""
    return artifact_stem(variant, resolution, settings.precision, form, settings.batch, settings.dynamic_batch,
                         dynamic_shape=settings.dynamic_shape, backbone=backbone,
                         tags=option_tags(fmt, settings.options)) + fmt.suffix


def default_out_dir(variant: str, resolution: Resolution | int | str, precision: Precision, form: Form = Form.DEPLOY,
                    backbone: bool = False) -> Path:
    """models/exports/<variant>_<resolution>_<precision>[_upstream][_backbone]/"""
    size = Resolution.parse(resolution)
    return EXPORTS / f"{variant}_{size}_{Precision(precision).value}{_kind_suffix(form, backbone)}"
