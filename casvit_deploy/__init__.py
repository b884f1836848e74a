"""casvit-deploy: ship CAS-ViT models to ONNX, CoreML and ExecuTorch, with proof of parity."""

__version__ = "0.1.0"
