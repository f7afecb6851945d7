"""Every converter path exports a model that passes the fidelity gate; broken exports are caught with a reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM
from xgboost import XGBClassifier, XGBRegressor

from edgewise.ml.errors import ExportError
from edgewise.ml.export import (
    INPUT_NAME,
    FidelityReport,
    LatencyReport,
    check_fidelity,
    measure_latency,
    native_outputs,
    onnx_session,
    run_model,
    to_onnx,
)
from edgewise.ml.training.tasks import Task

FEATURES = 4
RNG = np.random.default_rng(7)
X_TRAIN = RNG.normal(size=(400, FEATURES))
X_HELD_OUT = RNG.normal(size=(150, FEATURES)) * 1.5
BINARY = (X_TRAIN[:, 0] + X_TRAIN[:, 1] > 0).astype(np.int64)
WORDS = np.array(["cold", "normal", "hot"])[np.digitize(X_TRAIN[:, 0] + 0.5 * X_TRAIN[:, 2], [-0.7, 0.7])]
TARGET = 2.0 * X_TRAIN[:, 0] - X_TRAIN[:, 3] + 0.1 * RNG.normal(size=len(X_TRAIN))


def _fitted(name: str) -> tuple[Task, Any]:
    factories: dict[str, tuple[Task, Callable[[], Any]]] = {
        "logistic": (Task.CLASSIFICATION, lambda: LogisticRegression().fit(X_TRAIN, BINARY)),
        "forest-3-classes": (
            Task.CLASSIFICATION,
            lambda: RandomForestClassifier(12, random_state=0).fit(X_TRAIN, WORDS),
        ),
        "lgbm": (
            Task.CLASSIFICATION,
            lambda: LGBMClassifier(n_estimators=15, n_jobs=1, verbose=-1).fit(X_TRAIN, BINARY),
        ),
        "lgbm-3-classes": (
            Task.CLASSIFICATION,
            lambda: LGBMClassifier(n_estimators=15, n_jobs=1, verbose=-1).fit(X_TRAIN, WORDS),
        ),
        "xgb": (Task.CLASSIFICATION, lambda: XGBClassifier(n_estimators=15, n_jobs=1).fit(X_TRAIN, BINARY)),
        "lgbm-regressor": (
            Task.REGRESSION,
            lambda: LGBMRegressor(n_estimators=15, n_jobs=1, verbose=-1).fit(X_TRAIN, TARGET),
        ),
        "xgb-regressor": (
            Task.FORECAST,
            lambda: XGBRegressor(n_estimators=15, n_jobs=1).fit(X_TRAIN, TARGET),
        ),
        "isolation-forest": (
            Task.ANOMALY,
            lambda: _detector(IsolationForest(n_estimators=30, random_state=0)),
        ),
        "local-outlier-factor": (Task.ANOMALY, lambda: _detector(LocalOutlierFactor(novelty=True))),
        "one-class-svm": (Task.ANOMALY, lambda: _detector(OneClassSVM(nu=0.1))),
        "gaussian-mixture": (Task.ANOMALY, lambda: _detector(GaussianMixture(2, random_state=0))),
    }
    task, factory = factories[name]
    return task, factory()


def _detector(estimator: Any) -> Pipeline:
    return make_pipeline(StandardScaler(), estimator).fit(X_TRAIN)


MODELS = [
    "logistic",
    "forest-3-classes",
    "lgbm",
    "lgbm-3-classes",
    "xgb",
    "lgbm-regressor",
    "xgb-regressor",
    "isolation-forest",
    "local-outlier-factor",
    "one-class-svm",
    "gaussian-mixture",
]


@pytest.fixture(scope="module")
def exported() -> dict[str, tuple[Task, Any, bytes, Any]]:
    found = {}
    for name in MODELS:
        task, model = _fitted(name)
        onnx_bytes, outputs = to_onnx(model, task, FEATURES)
        found[name] = (task, model, onnx_bytes, outputs)
    return found


@pytest.mark.parametrize("name", MODELS)
def test_every_converter_path_passes_the_fidelity_gate(
    exported: dict[str, tuple[Task, Any, bytes, Any]], name: str
) -> None:
    task, model, onnx_bytes, outputs = exported[name]

    report = check_fidelity(model, onnx_bytes, outputs, X_HELD_OUT, task)

    assert report.passed, report.reason
    assert report.reason == ""
    assert report.rows == len(X_HELD_OUT)
    assert report.label_mismatches == 0
    assert 0 <= report.max_abs_delta <= 1e-4 * max(1.0, float(np.abs(_compared(model, outputs)).max()))
    session = onnx_session(onnx_bytes)
    assert [item.name for item in session.get_inputs()] == [INPUT_NAME]
    assert session.get_inputs()[0].shape == [None, FEATURES]


def _compared(model: Any, outputs: Any) -> npt.NDArray[np.float64]:
    native = native_outputs(model, outputs, X_HELD_OUT)
    values = native.probabilities if native.probabilities is not None else native.raw_scores
    return values if values is not None else np.asarray(native.labels, dtype=np.float64)


@pytest.mark.parametrize("name", ["logistic", "forest-3-classes", "lgbm-3-classes", "xgb"])
def test_classifiers_give_their_classes_and_a_probability_tensor(
    exported: dict[str, tuple[Task, Any, bytes, Any]], name: str
) -> None:
    _, model, onnx_bytes, outputs = exported[name]

    result = run_model(onnx_session(onnx_bytes), outputs, X_HELD_OUT)

    assert outputs.kind == "classifier"
    assert outputs.classes == tuple(model.classes_.tolist())
    assert result.probabilities is not None
    assert result.probabilities.shape == (len(X_HELD_OUT), len(outputs.classes))
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert result.labels is not None
    assert list(result.labels) == list(model.predict(X_HELD_OUT.astype(np.float32).astype(np.float64)))
    assert result.scores is not None
    np.testing.assert_allclose(result.scores, result.probabilities.max(axis=1))


@pytest.mark.parametrize("name", ["lgbm-regressor", "xgb-regressor"])
def test_regressors_give_predictions_as_labels(
    exported: dict[str, tuple[Task, Any, bytes, Any]], name: str
) -> None:
    _, model, onnx_bytes, outputs = exported[name]

    result = run_model(onnx_session(onnx_bytes), outputs, X_HELD_OUT)

    assert outputs.kind == "regressor"
    assert outputs.probabilities is None
    assert result.labels is not None
    assert result.labels.shape == (len(X_HELD_OUT),)
    np.testing.assert_allclose(
        result.labels, model.predict(X_HELD_OUT.astype(np.float32)), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize(
    "name", ["isolation-forest", "local-outlier-factor", "one-class-svm", "gaussian-mixture"]
)
def test_anomaly_scores_are_higher_for_outliers_and_the_threshold_is_left_to_the_trainer(
    exported: dict[str, tuple[Task, Any, bytes, Any]], name: str
) -> None:
    _, model, onnx_bytes, outputs = exported[name]
    session = onnx_session(onnx_bytes)
    rows = np.array([[0.0] * FEATURES, [9.0] * FEATURES])

    result = run_model(session, outputs, rows)

    assert outputs.kind == "anomaly"
    assert outputs.score_sign == -1
    assert outputs.threshold is None
    assert result.labels is None
    assert result.scores is not None
    assert result.scores[1] > result.scores[0]
    threshold = float(result.scores.mean())
    flagged = run_model(session, dataclasses.replace(outputs, threshold=threshold), rows)
    assert flagged.labels is not None
    assert flagged.labels.tolist() == [0, 1]
    gated = check_fidelity(
        model, onnx_bytes, dataclasses.replace(outputs, threshold=threshold), rows, Task.ANOMALY
    )
    assert gated.passed, gated.reason


def test_a_swapped_onnx_model_fails_the_gate_with_the_reason(
    exported: dict[str, tuple[Task, Any, bytes, Any]],
) -> None:
    _, logistic, _, outputs = exported["logistic"]
    _, _, lgbm_onnx, _ = exported["lgbm"]

    report = check_fidelity(logistic, lgbm_onnx, outputs, X_HELD_OUT, Task.CLASSIFICATION)

    assert not report.passed
    assert report.max_abs_delta > 1e-4
    assert "beyond the tolerance" in report.reason
    assert report.label_mismatches > 0
    assert f"{report.label_mismatches} of {len(X_HELD_OUT)} labels differ" in report.reason
    assert FidelityReport.from_json(report.to_json()) == report


def test_a_swapped_anomaly_model_fails_on_scores(exported: dict[str, tuple[Task, Any, bytes, Any]]) -> None:
    _, forest, _, outputs = exported["isolation-forest"]
    _, _, svm_onnx, _ = exported["one-class-svm"]

    report = check_fidelity(forest, svm_onnx, outputs, X_HELD_OUT, Task.ANOMALY)

    assert not report.passed
    assert "anomaly score" in report.reason
    assert "worst at row" in report.reason


def test_a_corrupt_onnx_file_is_an_export_error(exported: dict[str, tuple[Task, Any, bytes, Any]]) -> None:
    task, model, onnx_bytes, outputs = exported["logistic"]
    corrupt = onnx_bytes[: len(onnx_bytes) // 2] + b"\xff" * 64

    with pytest.raises(ExportError, match="onnx: the model does not load"):
        check_fidelity(model, corrupt, outputs, X_HELD_OUT, task)
    with pytest.raises(ExportError, match="onnx: the model does not load"):
        measure_latency(b"not a model", X_HELD_OUT)


def test_a_spec_naming_an_output_the_model_lacks_is_an_export_error(
    exported: dict[str, tuple[Task, Any, bytes, Any]],
) -> None:
    task, model, onnx_bytes, outputs = exported["logistic"]

    with pytest.raises(ExportError, match="no output 'scores'"):
        check_fidelity(
            model, onnx_bytes, dataclasses.replace(outputs, probabilities="scores"), X_HELD_OUT, task
        )
    with pytest.raises(ExportError, match=r"outputs\.kind: 'classifier' does not fit the task 'regression'"):
        check_fidelity(model, onnx_bytes, outputs, X_HELD_OUT, Task.REGRESSION)


class _Majority(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier no converter knows."""

    def fit(self, X: Any, y: Any) -> _Majority:
        self.classes_, counts = np.unique(y, return_counts=True)
        self.n_features_in_ = np.asarray(X).shape[1]
        self.winner_ = self.classes_[np.argmax(counts)]
        return self

    def predict_proba(self, X: Any) -> Any:
        return np.tile((self.classes_ == self.winner_).astype(float), (len(X), 1))


def test_a_model_without_a_converter_is_an_export_error_naming_the_learner() -> None:
    with pytest.raises(ExportError, match="no ONNX conversion for _Majority"):
        to_onnx(_Majority().fit(X_TRAIN, BINARY), Task.CLASSIFICATION, FEATURES)


def test_a_model_fitted_on_a_dataframe_is_compared_with_its_column_names() -> None:
    columns = pandas.DataFrame(X_TRAIN, columns=["temp", "pressure", "flow", "rpm"])
    model = make_pipeline(StandardScaler(), IsolationForest(n_estimators=10, random_state=0)).fit(columns)
    onnx_bytes, outputs = to_onnx(model, Task.ANOMALY, FEATURES)

    # Warnings are errors here: a bare array given to the model would warn about missing feature names.
    report = check_fidelity(model, onnx_bytes, outputs, X_HELD_OUT, Task.ANOMALY)

    assert report.passed, report.reason


def test_models_that_cannot_be_what_the_task_asks_are_export_errors() -> None:
    lof = make_pipeline(StandardScaler(), LocalOutlierFactor()).fit(X_TRAIN)
    with pytest.raises(ExportError, match="novelty=True"):
        to_onnx(lof, Task.ANOMALY, FEATURES)
    with pytest.raises(ExportError, match="LogisticRegression is not a supported anomaly detector"):
        to_onnx(LogisticRegression().fit(X_TRAIN, BINARY), Task.ANOMALY, FEATURES)
    with pytest.raises(ExportError, match="n_features: LogisticRegression was fitted on 4 features, not 5"):
        to_onnx(LogisticRegression().fit(X_TRAIN, BINARY), Task.CLASSIFICATION, 5)


def test_latency_is_measured_one_row_a_call(exported: dict[str, tuple[Task, Any, bytes, Any]]) -> None:
    _, _, onnx_bytes, _ = exported["lgbm"]

    report = measure_latency(onnx_bytes, X_HELD_OUT, rows=50)

    assert report.rows == 50
    assert 0 < report.p50_ms <= report.p99_ms
    assert LatencyReport.from_json(report.to_json()) == report
