"""Tests of ONNX export, the fidelity gate and latency."""
