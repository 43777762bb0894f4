"""Using trained models: prediction on new videos (PyTorch or ONNX Runtime) and ONNX export."""
