"""What a LiteRT manifest records about its `.tflite` file."""

from __future__ import annotations

from dataclasses import dataclass

from casvit_deploy.artifacts.details import Details


@dataclass
class LiteRTDetails(Details):
    """`ops`: the file's op census read from the flatbuffer (ops by the dtype they compute in,
    quantize/dequantize counts, how weights are stored) and its `verdict`: what the file
    really computes in (int8, fp16-weights, float, or fake-int8: float compute between
    quantize/dequantize pairs); `delegate`: XNNPACK's partitions and the ops it leaves outside;
    `io_quantization`: scale and zero point of each int8 input and output and what an app does
    with them; `runtime`: the first LiteRT release the file says it needs, and what ran it;
    `fp16_weights`: which weights were stored as float16."""

    ops: dict | None = None
    delegate: dict | None = None
    io_quantization: dict | None = None
    runtime: dict | None = None
    fp16_weights: dict | None = None

    def target(self) -> dict:
        found = self.runtime or {}
        return {k: found[k] for k in ("min_runtime_version", "oldest_runtime_tested") if found.get(k)}

    def mobile_summary(self) -> str | None:
        """e.g. "XNNPACK: 21 partitions; outside: GELU x20 (int8)"."""
        if not isinstance(self.delegate, dict) or "partitions" not in self.delegate:
            return None
        outside = self.delegate.get("outside") or {}
        left = ", ".join(f"{op} x{n}" for op, n in sorted(outside.items())) or "nothing"
        return f"XNNPACK: {self.delegate['partitions']} partition(s); outside: {left}"

    def compression_label(self) -> str:
        return "fp16 weights" if self.fp16_weights else ""
