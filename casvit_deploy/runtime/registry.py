"""Opening an artifact: the format table names each format's Runner; this is the one
place an artifact is opened. Anything that stops an artifact from loading becomes a
one-line UsageError (exit 2): a missing file, an unknown format, a corrupt file.
"""

from __future__ import annotations

from pathlib import Path

from casvit_deploy.artifacts.formats import format_for_path, resolve
from casvit_deploy.errors import BackendMissingError, CasvitError, UsageError
from casvit_deploy.runtime.base import Runner, RunnerOptions

ONNX_PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def onnx_providers() -> list[str]:
    """The accelerated providers this onnxruntime has (TensorRT, CUDA), then CPU."""
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    return [p for p in ONNX_PROVIDER_PREFERENCE if p in available]


def open_runner(artifact: Path, options: RunnerOptions = RunnerOptions()) -> Runner:
    """The opened runner for `artifact` (use it as a context manager to close it)."""
    artifact = Path(artifact)
    fmt = format_for_path(artifact)
    fmt.require("run")
    runner = resolve(fmt.runner)(artifact, options)
    try:
        runner.open()
    except CasvitError:
        raise
    except ModuleNotFoundError as err:
        raise BackendMissingError(f"{fmt.name} needs the {err.name} package: "
                                  f"pip install 'casvit-deploy[{fmt.extra}]'") from None
    except Exception as err:  # every backend reports a corrupt file its own way
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UsageError(f"cannot load {artifact} as {fmt.name}: {reason}") from None
    return runner
