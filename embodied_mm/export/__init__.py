"""Edge deployment: ONNX export, int8 quantisation and an onnxruntime policy (docs/export.md)."""
