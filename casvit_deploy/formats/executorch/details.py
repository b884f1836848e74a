"""What an ExecuTorch manifest records about its program."""

from __future__ import annotations

from dataclasses import dataclass

from casvit_deploy.artifacts.details import Details


@dataclass
class ExecuTorchDetails(Details):
    """`delegation`: subgraphs and nodes delegated vs left on portable kernels, per operator;
    `keepdim_mean_rewrites`: spatial means rewritten so that XNNPACK takes them."""

    delegation: dict | None = None
    keepdim_mean_rewrites: int | None = None
