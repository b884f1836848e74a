"""Where an export goes: the artifact's file name and the default output folder, both made
from the settings that shape the artifact."""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.paths import EXPORTS
from casvit_deploy.settings import Form, Precision, Resolution


def _kind_suffix(form: Form, backbone: bool) -> str:
    return ("" if form is Form.DEPLOY else "_upstream") + ("_backbone" if backbone else "")


def artifact_stem(variant: str, resolution: Resolution | int | str, precision: Precision, form: Form = Form.DEPLOY,
                  batch: int = 1, dynamic_batch: bool = False, *, dynamic_shape: bool = False,
                  backbone: bool = False) -> str:
    """e.g. casvit_xs_224_fp32, casvit_xs_512x768_fp32_backbone; suffixes mark upstream form,
    a backbone, fixed batch > 1, dynamic batch ("_dynamic") and dynamic height and width
    ("_dynamic_hw", both: "_dynamic_bhw")."""
    stem = f"casvit_{variant}_{Resolution.parse(resolution)}_{Precision(precision).value}"
    stem += _kind_suffix(form, backbone)
    if dynamic_shape:
        return stem + ("_dynamic_bhw" if dynamic_batch else "_dynamic_hw") + (f"_b{batch}" if batch > 1 else "")
    return stem + ("_dynamic" if dynamic_batch else (f"_b{batch}" if batch > 1 else ""))


def default_out_dir(variant: str, resolution: Resolution | int | str, precision: Precision, form: Form = Form.DEPLOY,
                    backbone: bool = False) -> Path:
    """models/exports/<variant>_<resolution>_<precision>[_upstream][_backbone]/"""
    size = Resolution.parse(resolution)
    return EXPORTS / f"{variant}_{size}_{Precision(precision).value}{_kind_suffix(form, backbone)}"
