"""Post-training int8 quantization shared by the formats that offer it: which parts stay
float (targets), the backends' quantizers (ExecuTorch PT2E, ONNX Runtime), per-block
quantization error, and the search for the fewest float blocks that reach a target."""
