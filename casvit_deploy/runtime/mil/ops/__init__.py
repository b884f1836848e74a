"""MIL op implementations; importing this package registers every one of them."""

from casvit_deploy.runtime.mil.ops import activation, classify, compression, elementwise, nn, tensor  # noqa: F401
