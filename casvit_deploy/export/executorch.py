"""ExecuTorch export: `.pte` lowered with the XNNPACK (or CoreML) partitioner, or with none
("portable": every op on ExecuTorch's reference kernels, a slow baseline for comparison).

Delegation coverage is measured on the lowered graph; an artifact that leaves compute
ops on portable kernels is refused unless the `allow_portable` option is set. The
written program is loaded with `executorch.runtime` and run once before it is accepted
(not for the CoreML delegate off macOS: it lowers on Linux, but only Apple builds of the
runtime can load it, so the manifest says it was not run).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from casvit_deploy.errors import ExportError, UsageError
from casvit_deploy.export.base import ExportJob, FormatOutput
from casvit_deploy.export.delegable import keepdim_spatial_means
from casvit_deploy.export.graph import example_input, export_program

BACKENDS = ("xnnpack", "coreml", "portable")
BOOKKEEPING = ("getitem", "alloc", "sym_size")  # not compute: never counted as undelegated
RTOL = 1e-3  # sanity check of the loaded program against eager, relative to max |eager|


def _partitioners(backend: str) -> list:
    if backend == "portable":
        return []
    if backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        return [XnnpackPartitioner()]
    if backend == "coreml":
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner

        return [CoreMLPartitioner()]
    raise UsageError(f"unknown ExecuTorch backend {backend!r}: choose one of {', '.join(BACKENDS)}")


def _lower(program, backend: str):
    from executorch.exir import to_edge_transform_and_lower

    try:
        return to_edge_transform_and_lower(program, partitioner=_partitioners(backend))
    except (ImportError, RuntimeError, OSError) as err:
        if backend != "coreml":
            raise
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ExportError(f"the ExecuTorch CoreML delegate does not lower on this platform ({reason}); "
                          "use --backend xnnpack, or export on macOS") from None


def coverage(edge) -> dict:
    """Nodes delegated vs left on portable kernels, per operator (bookkeeping excluded)."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge.exported_program().graph_module)
    portable = {op: b.non_delegated for op, b in info.delegation_by_operator.items()
                if b.non_delegated and not op.startswith(BOOKKEEPING)}
    return {"delegated_subgraphs": info.num_delegated_subgraphs, "delegated_nodes": info.num_delegated_nodes,
            "portable_nodes": sum(portable.values()), "portable_ops": portable}


def _refuse_portable(report: dict, backend: str) -> None:
    ops = ", ".join(f"{op} x{n}" for op, n in sorted(report["portable_ops"].items()))
    raise ExportError(f"{report['portable_nodes']} op(s) not delegated to {backend} and left on portable "
                      f"kernels ({ops}); pass --allow-portable to accept a partly delegated program")


def _run_once(path: Path, job: ExportJob) -> float:
    """Load the written program, run it once, return max |pte - eager| / max |eager|."""
    import torch

    from casvit_deploy.runtime.executorch import ExecuTorchRunner

    image = example_input(job.batch, job.resolution, job.dynamic_batch)
    out = ExecuTorchRunner(path).run(image.numpy())["logits"]
    with torch.no_grad():
        ref = job.model(image).numpy()
    if out.shape != ref.shape:
        raise ExportError(f"ExecuTorch program returned shape {out.shape}, expected {ref.shape}")
    return float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-12))


class ExecuTorchExporter:
    format = "executorch"
    suffix = ".pte"
    requires = (("executorch", "executorch"),)
    precisions = ("fp32",)

    def export(self, job: ExportJob) -> FormatOutput:
        backend = str(job.options.get("backend") or "xnnpack").lower()
        job.progress("export")
        program = export_program(job.model, job.batch, job.resolution, job.dynamic_batch)
        rewritten = keepdim_spatial_means(program)
        job.progress("lower")
        edge = _lower(program, backend)
        report = coverage(edge)
        if report["portable_nodes"] and backend != "portable" and not job.options.get("allow_portable"):
            _refuse_portable(report, backend)
        job.artifact.write_bytes(edge.to_executorch().buffer)
        job.progress("verify")
        if backend == "coreml" and sys.platform != "darwin":
            error, verified = None, "not run: the CoreML delegate's runtime exists only on Apple platforms"
        else:
            error, verified = _run_once(job.artifact, job), "loaded and ran once in executorch.runtime"
        if error is not None and error > RTOL:
            raise ExportError(f"ExecuTorch output differs from eager PyTorch (relative error {error:.2e})")
        n = "batch" if job.dynamic_batch else job.batch
        return FormatOutput(program, [{"name": "image", "shape": [n, 3, job.resolution, job.resolution],
                                       "dtype": "float32", "layout": "NCHW"}],
                            [{"name": "logits", "shape": [n, job.num_classes], "dtype": "float32", "layout": "NC"}],
                            {"format": self.format, "backend": backend, "delegation": report,
                             "keepdim_mean_rewrites": rewritten, "verified": verified,
                             "verify_relative_error": error})
