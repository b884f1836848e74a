"""Opening an artifact: the one place an artifact is opened, by the runner its format's
record names, with what its manifest records (preprocessing of an image input, output
names a format does not store) filled into the options. Anything that stops an artifact
from loading becomes a one-line UsageError (exit 2): a missing file, an unknown format, a
corrupt file.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from casvit_deploy.errors import BackendMissingError, CasvitError, UsageError, first_line
from casvit_deploy.formats import format_for_path
from casvit_deploy.runtime.base import Runner, RunnerOptions
from casvit_deploy.store import manifests


def _with_manifest(artifact: Path, options: RunnerOptions) -> RunnerOptions:
    """`options` with the manifest's preprocessing and output names where they are not given."""
    if options.preprocessing is not None and options.output_names is not None:
        return options
    manifest = manifests.find(artifact)
    if manifest is None:
        return options
    return replace(options, preprocessing=options.preprocessing or manifest.preprocessing,
                   output_names=options.output_names or tuple(manifest.output_names))


def open_runner(artifact: Path, options: RunnerOptions = RunnerOptions()) -> Runner:
    """The opened runner for `artifact` (use it as a context manager to close it)."""
    artifact = Path(artifact)
    fmt = format_for_path(artifact)
    fmt.require("run")
    runner = fmt.runner(artifact, _with_manifest(artifact, options))
    try:
        runner.open()
    except CasvitError:
        raise
    except ModuleNotFoundError as err:
        raise BackendMissingError(f"{fmt.name} needs the {err.name} package: "
                                  f"pip install 'casvit-deploy[{fmt.extra}]'") from None
    except Exception as err:  # every backend reports a corrupt file its own way
        raise UsageError(f"cannot load {artifact} as {fmt.name}: {first_line(err)}") from None
    return runner
