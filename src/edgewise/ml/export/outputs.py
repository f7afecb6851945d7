"""What a model says about rows of features, read the way its ``OutputSpec`` describes, from ONNX or natively.

``ModelOutputs`` is the one shape both sides take, so the fidelity gate, threshold choice and the device all
read a model alike: ``labels`` are class labels (classifier; with a ``threshold``, a binary classifier's label
is its second class's index when that class's probability is above it), predictions (regressor) or 1/0
anomaly flags (anomaly, only once a threshold is set); ``scores`` are the probability of the predicted class
(classifier) or the anomaly score, ``score_sign`` * the raw score, so that higher is more anomalous;
``probabilities`` are the class probabilities, one column per class in ``OutputSpec.classes`` order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edgewise.ml.errors import ExportError

if TYPE_CHECKING:
    import onnxruntime

    from edgewise.protocol.model_package import OutputSpec


@dataclass(frozen=True)
class ModelOutputs:
    """A model's outputs for ``rows`` rows (see the module docstring for what each array holds)."""

    labels: npt.NDArray[Any] | None
    scores: npt.NDArray[np.float64] | None
    probabilities: npt.NDArray[np.float64] | None
    #: The anomaly detector's own output before ``score_sign`` (what the fidelity gate compares).
    raw_scores: npt.NDArray[np.float64] | None = None


def as_rows(X: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """``X`` as the float32 matrix the ONNX input takes."""
    data = np.asarray(X, dtype=np.float32)
    if data.ndim != 2:
        raise ExportError(f"X: must be a matrix of rows by features, got shape {data.shape}")
    return data


def run_model(session: onnxruntime.InferenceSession, outputs: OutputSpec, X: npt.ArrayLike) -> ModelOutputs:
    """Run the ONNX ``session`` on the rows of ``X`` and read its outputs by the names ``outputs`` gives."""
    data = as_rows(X)
    names = {output.name for output in session.get_outputs()}
    wanted = [name for name in (outputs.label, outputs.probabilities, outputs.score) if name is not None]
    missing = [name for name in wanted if name not in names]
    if missing:
        raise ExportError(f"outputs: the ONNX model has no output {missing[0]!r} (it has {sorted(names)})")
    values = dict(zip(wanted, session.run(wanted, {session.get_inputs()[0].name: data}), strict=True))
    if outputs.kind == "classifier":
        if outputs.label is None or outputs.probabilities is None:
            raise ExportError("outputs: a classifier needs both 'label' and 'probabilities'")
        return _classifier(
            np.asarray(values[outputs.label]).ravel(), values[outputs.probabilities], outputs.threshold
        )
    if outputs.kind == "regressor":
        if outputs.label is None:
            raise ExportError("outputs: a regressor needs 'label' (the prediction output)")
        return ModelOutputs(labels=_floats(values[outputs.label]), scores=None, probabilities=None)
    if outputs.score is None:
        raise ExportError("outputs: an anomaly detector needs 'score'")
    return anomaly_outputs(_floats(values[outputs.score]), outputs)


def native_outputs(model: object, outputs: OutputSpec, X: npt.ArrayLike) -> ModelOutputs:
    """The native (scikit-learn API) model's outputs for ``X`` as ONNX sees it: float32 rows, back to float64.

    Anomaly detectors give ``score_samples`` for a ``GaussianMixture`` (its log-likelihood) and
    ``decision_function`` for the others, the raw scores their ONNX conversions output. A model fitted on a
    DataFrame gets one with the columns it was fitted with.
    """
    from edgewise.ml.export.onnx import final_estimator, native_estimator

    estimator: Any = native_estimator(model)
    data: Any = as_rows(X).astype(np.float64)
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        import pandas

        # A model fitted on a DataFrame warns when given bare arrays; give it back its column names.
        data = pandas.DataFrame(data, columns=[str(name) for name in names])
    if outputs.kind == "classifier":
        return _classifier(
            np.asarray(estimator.predict(data)).ravel(), estimator.predict_proba(data), outputs.threshold
        )
    if outputs.kind == "regressor":
        return ModelOutputs(labels=_floats(estimator.predict(data)), scores=None, probabilities=None)
    from sklearn.mixture import GaussianMixture

    if isinstance(final_estimator(estimator), GaussianMixture):
        raw = estimator.score_samples(data)
    else:
        raw = estimator.decision_function(data)
    return anomaly_outputs(_floats(raw), outputs)


def anomaly_outputs(raw: npt.NDArray[np.float64], outputs: OutputSpec) -> ModelOutputs:
    """Anomaly scores (higher = more anomalous) and, once a threshold is set, 1/0 flags from raw scores."""
    scores = outputs.score_sign * raw
    labels = None if outputs.threshold is None else (scores > outputs.threshold).astype(np.int64)
    return ModelOutputs(labels=labels, scores=scores, probabilities=None, raw_scores=raw)


def _classifier(labels: npt.NDArray[Any], probabilities: object, threshold: float | None) -> ModelOutputs:
    matrix = np.asarray(probabilities, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != labels.shape[0]:
        raise ExportError(
            f"outputs: probabilities of shape {matrix.shape} do not match {labels.shape[0]} labels"
        )
    if threshold is not None and matrix.shape[1] == 2:
        # A binary classifier with a decision threshold (the trainer's best-F1 cut for the second class): its
        # labels are class indices, 1 when the second class's probability is above the threshold.
        chosen = (matrix[:, 1] > threshold).astype(np.int64)
        return ModelOutputs(
            labels=chosen, scores=matrix[np.arange(len(chosen)), chosen], probabilities=matrix
        )
    return ModelOutputs(labels=labels, scores=matrix.max(axis=1), probabilities=matrix)


def _floats(values: object) -> npt.NDArray[np.float64]:
    return np.asarray(values, dtype=np.float64).ravel()


def prediction_fields(outputs: OutputSpec, produced: ModelOutputs, index: int) -> dict[str, object]:
    """Row ``index``'s result fields, as the device and the cloud endpoint both give them: ``label`` (the class
    value), ``score`` (its probability) and ``probabilities`` (per class) for a classifier, ``prediction`` for a
    regressor, ``score`` and (with a threshold) ``anomaly`` for an anomaly detector."""
    fields: dict[str, object] = {}
    if outputs.kind == "classifier":
        probabilities = produced.probabilities
        fields["label"] = _plain(produced.labels, index)
        fields["score"] = _plain(produced.scores, index)
        if probabilities is not None and len(outputs.classes) == probabilities.shape[1]:
            # The class value, not the model's own label: trained models label by class index, and in every
            # model the probability columns follow ``classes``.
            chosen = int(np.argmax(probabilities[index]))
            if outputs.threshold is not None and produced.labels is not None:
                chosen = int(produced.labels[index])  # the threshold's class index (see ``_classifier``)
            fields["label"] = outputs.classes[chosen]
            fields["probabilities"] = {
                str(name): float(value)
                for name, value in zip(outputs.classes, probabilities[index], strict=True)
            }
    elif outputs.kind == "regressor":
        fields["prediction"] = _plain(produced.labels, index)
    else:
        fields["score"] = _plain(produced.scores, index)
        if produced.labels is not None:
            fields["anomaly"] = bool(produced.labels[index])
    return fields


def _plain(values: Any, index: int) -> object:
    if values is None:
        return None
    value = values[index]
    # A numpy scalar has .item(); a plain Python value (a label from an object array) is used as it is.
    item = getattr(value, "item", None)
    return item() if callable(item) else value
