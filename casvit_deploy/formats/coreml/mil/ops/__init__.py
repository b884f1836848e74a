"""MIL op implementations; importing this package registers every one of them."""

from casvit_deploy.formats.coreml.mil.ops import activation, classify, compression, elementwise, nn, tensor  # noqa: F401
