"""The export pipeline, as a library: a request is checked once (request.py), its model
loaded, and each format exported in a staging folder, load-checked, described by its
manifest, gated by parity and published atomically (export.py, gate.py, staging.py),
its outcomes returned in memory (shipping.py). The CLI only parses flags and renders."""

from casvit_deploy.pipeline.export import ExportResult, export_model
from casvit_deploy.pipeline.naming import artifact_stem, default_out_dir
from casvit_deploy.pipeline.request import ExportRequest, plan
from casvit_deploy.pipeline.shipping import Outcome, Shipped, ship

__all__ = ["ExportRequest", "ExportResult", "Outcome", "Shipped", "artifact_stem", "default_out_dir", "export_model",
           "plan", "ship"]
