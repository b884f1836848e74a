"""What a CoreML manifest records about its package."""

from __future__ import annotations

from dataclasses import dataclass

from casvit_deploy.artifacts.details import Details


@dataclass
class CoreMLDetails(Details):
    """The MIL ops and spec version of the program; a classifier's labels and outputs, or an
    fp16 program's output dtype; the fp16 pre-check, what `--fp16-safe` kept in fp32, and
    the compression applied (its flag, minimum target, size and agreement)."""

    classifier_labels: int | None = None
    labels_source: str | None = None
    output_dtype: str | None = None
    mil_ops: dict | None = None
    spec_version: int | None = None
    classifier: dict | None = None
    fp16_precheck: dict | None = None
    fp16_safe: dict | None = None
    compression: dict | None = None

    def target(self) -> dict:
        return {} if self.spec_version is None else {"spec_version": self.spec_version}

    def compression_label(self) -> str:
        """e.g. "--palettize 4 (iOS18+)", "fp16-safe: 2 blocks fp32", or ""."""
        parts = []
        if self.compression:
            parts.append(f"{self.compression['flag']} ({self.compression['minimum_target']}+)")
        if self.fp16_safe and self.fp16_safe.get("kept_fp32"):
            parts.append(f"fp16-safe: {len(self.fp16_safe['kept_fp32'])} blocks fp32")
        return ", ".join(parts)
