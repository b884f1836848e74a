"""The first ONNX Runtime release that loads an `.ort` file: that of the ONNX graph it was
converted from (formats/onnx/opset.py), of its ORT format version, and of every kernel it
needs that older releases only ran from an `.onnx` file. Checked here by loading `.ort`
exports in ONNX Runtime 1.15.1, 1.16.3, 1.17.3 and 1.18.1 (benchmarks/ORT_COMPATIBILITY.md).
"""

from __future__ import annotations

from casvit_deploy.errors import ExportError

# ORT format (flatbuffer) version -> first release that reads it (1.15.1 refuses version 6)
FORMAT_RELEASES = {5: "1.13", 6: "1.16"}
# Ops a release runs from an .onnx file by expanding their ONNX function body, but cannot
# run from an .ort file (which no longer carries that body): (domain, since opset, op) ->
# first release with a kernel. 1.17.3 loads Gelu-20 from .onnx, not from .ort.
FORMAT_KERNELS = {("ai.onnx", 20, "Gelu"): "1.18"}


def _key(release: str) -> tuple[int, ...]:
    return tuple(int(part) for part in release.split("."))


def min_onnxruntime(source_release: str, ort_format: int, operators: frozenset[tuple[str, int, str]]) -> str:
    """The first release that loads an `.ort` file of `ort_format` whose source graph loads
    from `source_release` on and which needs `operators` (domain, opset, op)."""
    if ort_format not in FORMAT_RELEASES:
        raise ExportError(f"unknown ORT format version {ort_format}")
    needs = [source_release, FORMAT_RELEASES[ort_format]]
    needs += [release for op, release in FORMAT_KERNELS.items() if op in operators]
    return max(needs, key=_key)
