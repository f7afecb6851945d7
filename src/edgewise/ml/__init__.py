"""The ML pipeline: datasets, AutoML training, ONNX export, model registry, packaging, drift."""
