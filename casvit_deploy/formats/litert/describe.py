"""What a `.tflite` file says about itself, for `casvit info`: what it really computes in
(flatbuffer.census), whatever its manifest or name claims; a fake-int8 file reads as fp32."""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.errors import BackendMissingError, UsageError, first_line
from casvit_deploy.formats.litert import flatbuffer

# The precision each census verdict amounts to (weights stored in int8 and dequantized at
# load, or fed to float ops, still compute in float)
COMPUTES = {"int8": "int8", "fp16-weights": "fp16", "float": "fp32", "fake-int8": "fp32", "int8-weights": "fp32",
            "dynamic-range": "fp32"}


def _verified(path: Path) -> bytes:
    """The file's bytes once the interpreter's flatbuffer verifier accepted them."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ModuleNotFoundError:
        raise BackendMissingError("reading a .tflite file needs ai-edge-litert, which is not installed: "
                                  "pip install 'casvit-deploy[litert]'") from None
    from casvit_deploy.quiet import native_stderr_silenced

    data = Path(path).read_bytes()
    try:
        with native_stderr_silenced():
            Interpreter(model_content=data)
    except (ValueError, RuntimeError) as err:
        raise UsageError(f"{path}: not a loadable .tflite file ({first_line(err)})") from None
    return data


def summary(census: dict) -> str:
    """One line, e.g. "int8: 306 of 337 compute ops take int8; 30 quantize, 34 dequantize"."""
    verdict, total = census["verdict"], census["int8_compute_ops"] + census["float_compute_ops"]
    if verdict == "int8":
        return (f"int8: {census['int8_compute_ops']} of {total} compute ops take int8; {census['quantize']} quantize, "
                f"{census['dequantize']} dequantize")
    if verdict == "fake-int8":
        return (f"float (fake int8): no op computes in int8; {total} float compute ops between "
                f"{census['quantize_dequantize_pairs']} quantize/dequantize pairs")
    if verdict == "fp16-weights":
        stored = census["weights"].get("FLOAT16 -> DEQUANTIZE", 0)
        return f"float32 compute, {stored} weights stored as float16 (dequantized at load)"
    return f"{verdict}: {total} float compute ops"


def inspect(path: Path) -> dict:
    """The census of the file at `path` and what it computes in; UsageError for a file the
    interpreter does not load."""
    data = _verified(path)
    census = flatbuffer.census(data)
    return {"computes": COMPUTES[census["verdict"]], "summary": summary(census),
            "min_runtime_version": flatbuffer.min_runtime_version(data), "census": census}
