"""Reading a saved `.mlpackage` back into a MIL program with its weights (any platform)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from casvit_deploy.artifacts.records import Signature, TensorSpec
from casvit_deploy.errors import UsageError, first_line

PACKAGE_DATA = "Data"  # where a package's items live
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
        description, classes = self.spec.description, _class_count(self.program)
        return Signature(tuple(tensor_spec(d, classes=classes) for d in description.input),
                         tuple(tensor_spec(d, classes=classes) for d in description.output))


def _class_count(program) -> int | None:
    """How many classes a classifier's `classify` op names, else None."""
    for function in program.functions.values():
        for op in function.operations:
            if op.op_type == "classify":
                classes = op.inputs["classes"].val
                return len(getattr(classes, "ls", classes))
    return None


def tensor_spec(desc, layout: str | None = None, classes: int | None = None) -> TensorSpec:
    """A model description's feature as a TensorSpec (an image input is always NCHW; a
    classifier's probabilities are a dictionary over `classes` labels)."""
    kind, text = desc.type.WhichOneof("Type"), desc.shortDescription
    if kind == "imageType":
        t = desc.type.imageType
        return TensorSpec(desc.name, (1, 3, t.height, t.width), "uint8 image (RGB 0-255)", layout and "NCHW", text)
    if kind == "multiArrayType":
        t = desc.type.multiArrayType
        return TensorSpec(desc.name, tuple(t.shape), MULTIARRAY_DTYPES.get(t.dataType, str(t.dataType)), layout, text)
    if kind == "dictionaryType":
        return TensorSpec(desc.name, (classes,) if classes else (), "dictionary (label -> float64 probability)",
                          None, text)
    if kind == "stringType":
        return TensorSpec(desc.name, (1,), "string", None, text)
    return TensorSpec(desc.name, (), kind, None, text)


def _input_specs(spec) -> list[InputSpec]:
    specs = []
    for desc in spec.description.input:
        if desc.type.WhichOneof("Type") == "imageType":
            color = desc.type.imageType.ColorSpace.Name(desc.type.imageType.colorSpace)
            specs.append(InputSpec(desc.name, "image", color))
        else:
            specs.append(InputSpec(desc.name, "tensor"))
    return specs


def _read_package(path: Path) -> tuple[object, Path | None]:
    """(model spec, weights folder) of a package, read from its Manifest.json without
    opening the package for writing (coremltools' ModelPackage rewrites Manifest.json, and
    a checker must not touch, or need write access to, what it checks)."""
    from coremltools.models.utils import load_spec

    manifest = json.loads((path / "Manifest.json").read_text(encoding="utf-8"))
    items = manifest["itemInfoEntries"]
    spec = load_spec(str(path / PACKAGE_DATA / items[manifest["rootModelIdentifier"]]["path"]))
    weights = [item["path"] for item in items.values() if item.get("name") == "weights"]
    return spec, (path / PACKAGE_DATA / weights[0]) if weights else None


def program_of(model):
    """The MIL program (weights included) of an in-memory coremltools MLModel."""
    from coremltools.converters.mil.frontend.milproto.load import load

    spec = model.get_spec()
    return load(spec, spec.specificationVersion, model.weights_dir)


def load_mlpackage(path: Path | str) -> MLPackage:
    """The package's spec and MIL program; UsageError for anything that is not an ML program."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path} is not an .mlpackage directory")
    from coremltools.converters.mil.frontend.milproto.load import load

    try:
        spec, weights_dir = _read_package(path)
    except Exception as err:  # a damaged package fails in many ways
        raise UsageError(f"cannot read {path} as an ML package: {first_line(err)}") from None
    if spec.WhichOneof("Type") != "mlProgram":
        raise UsageError(f"{path} holds a {spec.WhichOneof('Type')} model, not an ML program")
    try:
        program = load(spec, spec.specificationVersion, str(weights_dir) if weights_dir else None)
    except Exception as err:
        raise UsageError(f"cannot load the ML program in {path}: {first_line(err)}") from None
    return MLPackage(path, spec, program, _input_specs(spec), [o.name for o in spec.description.output])
