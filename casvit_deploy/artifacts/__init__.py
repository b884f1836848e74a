"""The artifact contract: what a format is (one record each), what a manifest holds (one
typed class that alone reads and writes manifest JSON), and the preprocessing both record."""

from casvit_deploy.artifacts.formats import FORMATS, Format, Localization, format_for_path, get_format, parse_formats
from casvit_deploy.artifacts.manifest import CheckpointRecord, Manifest, ManifestError, ParityRecord, TensorSpec
from casvit_deploy.artifacts.preprocessing import Preprocessing

__all__ = ["FORMATS", "CheckpointRecord", "Format", "Localization", "Manifest", "ManifestError", "ParityRecord",
           "Preprocessing", "TensorSpec", "format_for_path", "get_format", "parse_formats"]
