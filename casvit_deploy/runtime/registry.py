"""Opening an artifact: one loader per format, chosen by the file's suffix.

Parity and bench open every artifact through `open_runner`, so each runtime is set up
in exactly one place. Anything that stops an artifact from loading becomes a one-line
UsageError (exit 2): a missing file, an unknown format, a corrupt file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from casvit_deploy.errors import BackendMissingError, CasvitError, UsageError
from casvit_deploy.runtime.base import Runner

FORMAT_BY_SUFFIX = {".onnx": "onnx", ".pte": "executorch", ".mlpackage": "coreml"}
ONNX_PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def artifact_format(artifact: Path) -> str:
    """'onnx', 'executorch' or 'coreml' for an existing artifact; UsageError otherwise."""
    artifact = Path(artifact)
    if not artifact.exists():
        raise UsageError(f"artifact {artifact} does not exist")
    fmt = FORMAT_BY_SUFFIX.get(artifact.suffix.lower())
    if fmt is None:
        known = ", ".join(FORMAT_BY_SUFFIX)
        raise UsageError(f"{artifact}: unknown artifact format {artifact.suffix or '(no suffix)'!r}; expected {known}")
    return fmt


def onnx_providers() -> list[str]:
    """The accelerated providers this onnxruntime has (TensorRT, CUDA), then CPU."""
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    return [p for p in ONNX_PROVIDER_PREFERENCE if p in available]


def _open_onnx(path: Path, engine: str | None) -> Runner:
    from casvit_deploy.runtime.onnx import OnnxRunner

    return OnnxRunner(path, providers=onnx_providers())


def _open_executorch(path: Path, engine: str | None) -> Runner:
    from casvit_deploy.runtime.executorch import ExecuTorchRunner

    return ExecuTorchRunner(path)


def _open_coreml(path: Path, engine: str | None) -> Runner:
    from casvit_deploy.runtime.coreml import CoreMLRunner

    return CoreMLRunner(path, engine=engine or "auto")


LOADERS: dict[str, Callable[[Path, str | None], Runner]] = {
    "onnx": _open_onnx,
    "executorch": _open_executorch,
    "coreml": _open_coreml,
}
BACKEND_PACKAGES = {"onnx": "onnxruntime", "executorch": "executorch", "coreml": "coremltools"}


def open_runner(artifact: Path, engine: str | None = None) -> Runner:
    """The runner for `artifact`; `engine` picks the CoreML engine (others ignore it)."""
    artifact = Path(artifact)
    fmt = artifact_format(artifact)
    try:
        return LOADERS[fmt](artifact, engine)
    except CasvitError:
        raise
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("casvit_deploy"):
            raise UsageError(f"no {fmt} runner in this build of casvit-deploy ({err.name} missing)") from None
        raise BackendMissingError(
            f"{fmt} needs the {err.name} package: pip install {BACKEND_PACKAGES[fmt]}") from None
    except Exception as err:  # every backend reports a corrupt file its own way
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UsageError(f"cannot load {artifact} as {fmt}: {reason}") from None
