"""Convert a trained model to ONNX, with the ``OutputSpec`` that says how to read what it outputs.

scikit-learn models go through skl2onnx; LightGBM and XGBoost models through onnxmltools' converters,
registered with skl2onnx (``update_registered_converter``) so that one call converts them alone or at the end
of a pipeline. The target opsets are ONNX 17 and ``ai.onnx.ml`` 3: onnxmltools' tree converters (and
skl2onnx's IsolationForest) refuse ``ai.onnx.ml`` 4 and later, and ONNX 17 is supported by every
ONNX Runtime the ``inference`` extra allows. The input is one float32 tensor ``input`` of shape
``[None, n_features]``. Classifiers are converted without ZipMap, so their probabilities are a tensor.
Anomaly detectors (IsolationForest, LocalOutlierFactor with ``novelty=True``, OneClassSVM, GaussianMixture,
usually behind a StandardScaler) output a raw score where higher means more normal, hence ``score_sign=-1``;
their ``threshold`` is left ``None`` for the trainer to set.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from edgewise.ml.errors import ExportError

if TYPE_CHECKING:
    from edgewise.protocol.model_package import OutputSpec

#: The ONNX input tensor's name, in every exported model.
INPUT_NAME: Final = "input"
#: Opsets per domain (see the module docstring for why these).
TARGET_OPSET: Final = {"": 17, "ai.onnx.ml": 3}

_KIND_OF_TASK: Final = {
    "classification": "classifier",
    "regression": "regressor",
    "forecast": "regressor",
    "anomaly": "anomaly",
}
_ANOMALY_DETECTORS: Final = ("IsolationForest", "LocalOutlierFactor", "OneClassSVM", "GaussianMixture")


def native_estimator(model: object) -> Any:
    """The scikit-learn API estimator inside ``model``: FLAML's ``AutoML`` and estimator wrappers unwrapped."""
    estimator: Any = model
    # FLAML wraps the library's estimator (AutoML.model is a flaml estimator whose .estimator is the real one).
    while type(estimator).__module__.startswith("flaml"):
        inner = getattr(estimator, "model", None) if hasattr(estimator, "best_estimator") else None
        inner = inner if inner is not None else getattr(estimator, "estimator", None)
        if inner is None:
            raise ExportError(f"model: the FLAML object {type(estimator).__name__} holds no fitted estimator")
        estimator = inner
    return estimator


def final_estimator(model: object) -> Any:
    """The last step of a pipeline, or the model itself."""
    from sklearn.pipeline import Pipeline

    estimator = native_estimator(model)
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


def learner_name(model: object) -> str:
    """The class name of the model's final estimator, which error messages name."""
    return type(final_estimator(model)).__name__


def to_onnx(model: object, task: str, n_features: int) -> tuple[bytes, OutputSpec]:
    """The serialized ONNX model and its ``OutputSpec``; ``task`` is a ``Task`` (or its value).

    Raises ``ExportError`` naming the learner when there is no converter for it or the conversion fails.
    """
    from edgewise.protocol.model_package import OutputSpec

    kind = _KIND_OF_TASK.get(str(task))
    if kind is None:
        raise ExportError(f"task: {str(task)!r} is not one of {sorted(_KIND_OF_TASK)}")
    if n_features < 1:
        raise ExportError(f"n_features: must be at least 1, not {n_features}")
    estimator = native_estimator(model)
    final = final_estimator(estimator)
    learner = type(final).__name__
    fitted_features = getattr(estimator, "n_features_in_", None)
    if fitted_features is not None and int(fitted_features) != n_features:
        raise ExportError(f"n_features: {learner} was fitted on {fitted_features} features, not {n_features}")
    options = _options(final, kind, learner)
    onnx_bytes, output_names = _convert(estimator, learner, n_features, options)
    if kind == "classifier":
        # tolist() makes the numpy class values plain Python ones, as JSON and the manifest need.
        classes = tuple(np.asarray(final.classes_).tolist()) if hasattr(final, "classes_") else ()
        spec = OutputSpec(
            kind="classifier", label=output_names[0], probabilities=output_names[1], classes=classes
        )
    elif kind == "regressor":
        spec = OutputSpec(kind="regressor", label=output_names[0])
    else:
        spec = OutputSpec(kind="anomaly", score=output_names[-1], score_sign=-1, threshold=None)
    return onnx_bytes, spec


def _options(final: Any, kind: str, learner: str) -> dict[int, dict[str, object]]:
    if kind == "classifier":
        if not hasattr(final, "predict_proba"):
            raise ExportError(f"model: {learner} gives no class probabilities, so it cannot be a classifier")
        return {id(final): {"zipmap": False}}
    if kind == "anomaly":
        if learner not in _ANOMALY_DETECTORS:
            raise ExportError(
                f"model: {learner} is not a supported anomaly detector ({', '.join(_ANOMALY_DETECTORS)})"
            )
        if learner == "LocalOutlierFactor" and not getattr(final, "novelty", False):
            raise ExportError("model: LocalOutlierFactor must be fitted with novelty=True to score new rows")
        if learner == "GaussianMixture":
            return {id(final): {"score_samples": True}}
    return {}


def _convert(
    estimator: Any, learner: str, n_features: int, options: dict[int, dict[str, object]]
) -> tuple[bytes, list[str]]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    register_converters()
    try:
        model = convert_sklearn(
            estimator,
            name=learner,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            target_opset=dict(TARGET_OPSET),
            options=options or None,
        )
    except Exception as error:  # skl2onnx raises many unrelated classes for a model it cannot convert
        raise ExportError(
            f"model: no ONNX conversion for {learner}: {type(error).__name__}: {error}"
        ) from error
    return model.SerializeToString(), [output.name for output in model.graph.output]


@functools.cache
def register_converters() -> None:
    """Teach skl2onnx LightGBM's and XGBoost's scikit-learn models (once per process)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    except ImportError:
        pass
    else:
        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm,
            options=classifier_options,
        )
        update_registered_converter(
            LGBMRegressor,
            "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes,
            convert_lightgbm,
            options={"split": None},
        )
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor
    except ImportError:
        pass
    else:
        update_registered_converter(
            XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options=classifier_options,
        )
        update_registered_converter(
            XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost
        )
