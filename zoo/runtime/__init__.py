"""Runtimes: run a deployed model file (ONNX) as a drop-in for the PyTorch model."""
