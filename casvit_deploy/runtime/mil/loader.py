"""Reading a saved `.mlpackage` back into a MIL program with its weights (any platform)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from casvit_deploy.artifacts.manifest import Signature, TensorSpec
from casvit_deploy.errors import UsageError

MULTIARRAY_DTYPES = {65552: "float16", 65568: "float32", 65600: "float64", 131104: "int32"}


@dataclass
class InputSpec:
    """A model input as the model description declares it: a tensor or an image."""

    name: str
    kind: str  # "tensor" or "image"
    color_space: str | None = None


@dataclass
class MLPackage:
    path: Path
    spec: object     # the Model protobuf
    program: object  # coremltools.converters.mil.mil.Program
    inputs: list[InputSpec]
    output_names: list[str]

    @property
    def signature(self) -> Signature:
        """Inputs and outputs as the model description declares them."""
        description = self.spec.description
        return Signature(tuple(map(tensor_spec, description.input)), tuple(map(tensor_spec, description.output)))


def tensor_spec(desc, layout: str | None = None) -> TensorSpec:
    """A model description's feature as a TensorSpec (an image input is always NCHW)."""
    kind = desc.type.WhichOneof("Type")
    if kind == "imageType":
        t = desc.type.imageType
        return TensorSpec(desc.name, (1, 3, t.height, t.width), "uint8 image (RGB 0-255)", layout and "NCHW")
    if kind == "multiArrayType":
        t = desc.type.multiArrayType
        return TensorSpec(desc.name, tuple(t.shape), MULTIARRAY_DTYPES.get(t.dataType, str(t.dataType)), layout)
    return TensorSpec(desc.name, (), kind, None)


def _input_specs(spec) -> list[InputSpec]:
    specs = []
    for desc in spec.description.input:
        if desc.type.WhichOneof("Type") == "imageType":
            color = desc.type.imageType.ColorSpace.Name(desc.type.imageType.colorSpace)
            specs.append(InputSpec(desc.name, "image", color))
        else:
            specs.append(InputSpec(desc.name, "tensor"))
    return specs


def load_mlpackage(path: Path | str) -> MLPackage:
    """The package's spec and MIL program; UsageError for anything that is not an ML program."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path} is not an .mlpackage directory")
    from coremltools.converters.mil.frontend.milproto.load import load
    from coremltools.models import MLModel

    try:
        model = MLModel(str(path), skip_model_load=True)
    except Exception as err:  # coremltools reports a damaged package in many ways
        raise UsageError(f"cannot read {path} as an ML package: {str(err).splitlines()[0][:200]}") from None
    spec = model.get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise UsageError(f"{path} holds a {spec.WhichOneof('Type')} model, not an ML program")
    try:
        program = load(spec, spec.specificationVersion, model.weights_dir)
    except Exception as err:
        raise UsageError(f"cannot load the ML program in {path}: {str(err).splitlines()[0][:200]}") from None
    return MLPackage(path, spec, program, _input_specs(spec), [o.name for o in spec.description.output])
