"""The ML pipeline: datasets, AutoML training, ONNX export, model registry, packaging, drift.

The cloud runs it; the built-in components on devices use its light parts only (window features, JSON paths,
reading a model's outputs). The device runtime never imports it (an import contract checks it).
"""
