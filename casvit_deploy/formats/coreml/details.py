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
        """e.g. "--palettize 4 (iOS18+)", "--palettize auto: 6 bits (iOS16+)", "fp16-safe: 2 blocks
        fp32", or ""."""
        parts = []
        if self.compression:
            choice = self.compression.get("choice")
            flag = f"--palettize auto: {choice['bits']} bits" if choice else self.compression["flag"]
            parts.append(f"{flag} ({self.compression['minimum_target']}+)")
        if self.fp16_safe and self.fp16_safe.get("kept_fp32"):
            parts.append(f"fp16-safe: {len(self.fp16_safe['kept_fp32'])} blocks fp32")
        return ", ".join(parts)

    def choices(self) -> list[str]:
        """--palettize auto's and a budgeted --fp16-safe's choice, in words."""
        lines = []
        choice = (self.compression or {}).get("choice")
        if choice:
            lines.append(f"--palettize auto: {choice['bits']} bits, chosen by {choice['chosen_by']} after "
                         f"{len(choice['search'])} trial(s){_last_trial(choice)}")
        safe = self.fp16_safe or {}
        if safe.get("chosen_by"):
            kept = ", ".join(safe["kept_fp32"]) or "none"
            package = _drop_text(safe["package"], safe)
            lines.append(f"--fp16-safe: blocks in fp32: {kept}; chosen by {safe['chosen_by']} after "
                         f"{len(safe['search'])} trial(s) of emulated fp16; the package: {package}")
        return lines


def _drop_text(figures: dict, budgeted: dict) -> str:
    """e.g. "top-1 drop 0.28 pp (budget 0.5 pp) on 359 labelled images of /data/val"."""
    data = budgeted["labelled_data"]
    return (f"top-1 drop {figures['top1_drop_pp']:.2f} pp (budget {budgeted['max_top1_drop']:g} pp) on "
            f"{data['files']} labelled images of {data['source']}")


def _last_trial(choice: dict) -> str:
    last = choice["search"][-1]
    cosine = f"cosine {last['cosine']:.5f}" if last.get("cosine") is not None else ""
    if choice.get("max_top1_drop") is None:
        return f": {cosine}" if cosine else ""
    return f": {_drop_text(last, choice)}" + (f", {cosine}" if cosine else "")
