"""Model training (torch + torchvision), exported to ONNX. Never imported by the runtime."""
