"""A toy fifth format, made only from the public contract (artifacts.format, export.base,
runtime.base): the test that a format is one folder and one record. Its artifact is a
`torch.export` program saved with `torch.export.save`; its runner loads it back."""

from casvit_deploy.artifacts.details import Details
from casvit_deploy.artifacts.format import Format, Package
from casvit_deploy.settings import Precision
from tests.toy_format.exporter import ToyExporter, ToyOptions, ToyTarget
from tests.toy_format.runner import ToyRunner

_TORCH = Package("torch", "torch")
FORMAT = Format("toy", ".toy", ToyExporter, ToyRunner, ToyOptions, Details, export_packages=(_TORCH,),
                run_packages=(_TORCH,), extra="toy", precisions=(Precision.FP32,), bench=(ToyTarget(),))
