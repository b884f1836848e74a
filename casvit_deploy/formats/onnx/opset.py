"""The opset choice of ONNX files: writing an opset below the exporter's own, the IR version
an opset needs, and the first ONNX Runtime release that loads the result.

ONNX Runtime refuses a model whose IR version or default-domain opset is newer than the
ONNX release it was built with ("Unsupported model IR version: 10, max supported IR
version: 9"). `ORT_RELEASES` is ONNX Runtime's compatibility matrix; its rows from 1.15 on,
the ORT format versions and the kernel table were checked here by loading exports of every
opset, and their `.ort` files (formats/ort/releases.py), in ONNX Runtime 1.15.1, 1.16.3, 1.17.3 and 1.18.1
(benchmarks/ORT_COMPATIBILITY.md; 1.13 and 1.14 have no Python 3.11 wheels to check with).
"""

from __future__ import annotations

from casvit_deploy.errors import ExportError, first_line

EXPORTER_MIN_OPSET = 18  # torch's dynamo exporter writes opset 18 and newer itself
# (ONNX Runtime release, newest default-domain opset, newest IR version), oldest first
ORT_RELEASES = (("1.13", 17, 8), ("1.14", 18, 8), ("1.15", 19, 9), ("1.17", 20, 9), ("1.18", 21, 10))


def ir_version_for(opset: int) -> int:
    """The lowest IR version that can carry `opset` (ONNX's own release table)."""
    from onnx import helper

    return helper.find_min_ir_version_for([helper.make_opsetid("", opset)])


def min_onnxruntime(opset: int, ir_version: int) -> str:
    """The first ONNX Runtime release that loads a file of this opset and IR version."""
    found = next((release for release, max_opset, max_ir in ORT_RELEASES
                  if opset <= max_opset and ir_version <= max_ir), None)
    if found is None:
        raise ExportError(f"no known ONNX Runtime release loads opset {opset} with IR version {ir_version}")
    return found


def convert_down(model, opset: int):
    """`model` (written at EXPORTER_MIN_OPSET) at the lower `opset`, by onnx's version
    converter. onnx 1.23 keeps ReduceMean-18's `noop_with_empty_axes` on the ReduceMean-13
    it writes, where the attribute does not exist; at 0 (its default, and what the exporter
    writes) it is dropped here, any other value is refused."""
    import onnx

    try:
        converted = onnx.version_converter.convert_version(model, opset)
    except Exception as err:  # the converter reports a missing adapter as a RuntimeError
        raise ExportError(f"cannot write ONNX opset {opset}: onnx's version converter failed "
                          f"({first_line(err)})") from None
    for node in converted.graph.node:
        kept = [a for a in node.attribute if not (node.op_type.startswith("Reduce") and a.name == "noop_with_empty_axes")]
        if len(kept) < len(node.attribute):
            if any(a.name == "noop_with_empty_axes" and a.i for a in node.attribute):
                raise ExportError(f"cannot write ONNX opset {opset}: {node.name} reduces nothing for empty axes")
            del node.attribute[:]
            node.attribute.extend(kept)
    return converted
