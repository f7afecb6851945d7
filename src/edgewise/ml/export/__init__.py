"""ONNX export of trained models, the fidelity gate between a model and its export, and latency on one core."""

from edgewise.ml.export.fidelity import FidelityReport, check_fidelity
from edgewise.ml.export.latency import LatencyReport, measure_latency, onnx_session
from edgewise.ml.export.onnx import INPUT_NAME, TARGET_OPSET, learner_name, register_converters, to_onnx
from edgewise.ml.export.outputs import ModelOutputs, native_outputs, run_model

__all__ = [
    "INPUT_NAME",
    "TARGET_OPSET",
    "FidelityReport",
    "LatencyReport",
    "ModelOutputs",
    "check_fidelity",
    "learner_name",
    "measure_latency",
    "native_outputs",
    "onnx_session",
    "register_converters",
    "run_model",
    "to_onnx",
]
