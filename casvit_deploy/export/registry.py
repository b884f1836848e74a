"""The exporter of each format, as the format table names it."""

from __future__ import annotations

import functools

from casvit_deploy.artifacts.formats import Format, resolve
from casvit_deploy.export.base import Exporter


def exporter_for(fmt: Format) -> Exporter:
    """The exporter the format record names; BackendMissingError when its packages are absent."""
    fmt.require("export")
    return _exporter(fmt.exporter)


@functools.cache
def _exporter(reference: str) -> Exporter:
    return resolve(reference)()
