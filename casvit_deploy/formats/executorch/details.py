"""What an ExecuTorch manifest records about its program."""

from __future__ import annotations

from dataclasses import dataclass

from casvit_deploy.artifacts.details import Details


@dataclass
class ExecuTorchDetails(Details):
    """`delegation`: subgraphs and nodes delegated vs left on portable kernels, per operator;
    `keepdim_mean_rewrites`: spatial means rewritten so that XNNPACK takes them;
    `pte_format`: the program's flatbuffer file identifier (e.g. "ET12");
    `written_by_executorch`: the executorch package that serialized it."""

    delegation: dict | None = None
    keepdim_mean_rewrites: int | None = None
    pte_format: str | None = None
    written_by_executorch: str | None = None

    def target(self) -> dict:
        """The writer's release is the minimum runtime that can honestly be named: an older one
        may lack the operators, delegate version or schema the program uses (not checked here
        against older runtimes); newer runtimes are meant to load it."""
        found = {"pte_format": self.pte_format, "min_executorch_runtime": self.written_by_executorch}
        return {k: v for k, v in found.items() if v is not None}
