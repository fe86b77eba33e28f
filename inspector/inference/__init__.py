"""Model packages (verified ONNX files with their records) and the ONNX Runtime session."""
