"""The ML pipeline: datasets, AutoML training, ONNX export, model registry, packaging, drift.

Only the cloud and the CLI import it; the device runtime never does (an import contract checks it).
"""
