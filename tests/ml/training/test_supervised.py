"""FLAML classification and regression end to end: search, leaderboard, ONNX export through the gate."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pyarrow as pa
import pytest

from edgewise.ml.errors import TrainingError
from edgewise.ml.export import check_fidelity, onnx_session, run_model
from edgewise.ml.export.outputs import prediction_fields
from edgewise.ml.training import ProgressEvent, Task, TrainingRequest, TrainingResult, train
from edgewise.ml.training.splits import time_split
from edgewise.ml.training.supervised import settle_decision_threshold
from tests.ml.training.tables import breast_cancer, early_faults, linear_regression


@pytest.fixture(scope="module")
def classified() -> tuple[TrainingResult, list[ProgressEvent], pa.Table]:
    table = breast_cancer()
    events: list[ProgressEvent] = []
    request = TrainingRequest(task=Task.CLASSIFICATION, label="diagnosis", time_budget_s=2.0, seed=1)
    return train(table, request, events.append), events, table


@pytest.fixture(scope="module")
def regressed() -> tuple[TrainingResult, pa.Table]:
    table = linear_regression()
    return train(table, TrainingRequest(task=Task.REGRESSION, label="target", time_budget_s=1.0)), table


def _held_out(table: pa.Table, features: list[str], label: str) -> tuple[np.ndarray, np.ndarray]:
    stamps = (
        table.column("timestamp").cast(pa.int64()).to_numpy() if "timestamp" in table.column_names else None
    )
    split = time_split(stamps, table.num_rows)
    X = np.column_stack([table.column(name).to_numpy() for name in features])
    return X[split.validation], table.column(label).to_numpy()[split.validation]


def test_classifier_beats_the_majority_baseline_on_held_out_rows(
    classified: tuple[TrainingResult, list[ProgressEvent], pa.Table],
) -> None:
    result, _, table = classified
    X, y = _held_out(table, result.features, "diagnosis")
    predicted = run_model(onnx_session(result.onnx), result.outputs, X)
    assert predicted.labels is not None
    assert predicted.probabilities is not None
    majority = max(np.mean(y == 0), np.mean(y == 1))
    assert np.mean(predicted.labels == y) > majority + 0.05
    assert result.metric == "roc_auc"
    assert result.score > 0.9
    assert predicted.probabilities.shape == (len(y), 2)


def test_classifier_leaderboard_holds_several_learners_ranked(
    classified: tuple[TrainingResult, list[ProgressEvent], pa.Table],
) -> None:
    result, events, _ = classified
    learners = {candidate.learner for candidate in result.leaderboard}
    assert len(learners) >= 2
    assert learners <= {"lgbm", "xgboost", "rf", "extra_tree", "lrl1"}
    scores = [candidate.score for candidate in result.leaderboard]
    assert scores == sorted(scores, reverse=True)
    assert all(candidate.metric == "roc_auc" and candidate.params for candidate in result.leaderboard)
    chosen = [candidate for candidate in result.leaderboard if candidate.fits_budget]
    assert len(chosen) == 1
    assert chosen[0].learner == result.learner
    assert chosen[0].size_bytes == result.size_bytes
    assert any(event.kind == "candidate" and event.candidate == chosen[0] for event in events)
    searching = next(i for i, e in enumerate(events) if e.message.startswith("searching lgbm, xgboost"))
    live = [e.candidate for e in events[searching:] if e.candidate is not None and e.candidate.note]
    assert live[0].note == f"new best for {live[0].learner}"
    assert (
        next(event.message for event in events if event.kind == "phase")
        == "preparing 569 rows for classification"
    )


def test_classifier_export_passes_the_gate_and_matches_the_native_model(
    classified: tuple[TrainingResult, list[ProgressEvent], pa.Table],
) -> None:
    result, _, table = classified
    assert result.fidelity.passed
    assert result.fidelity.label_mismatches == 0
    assert result.size_bytes == len(result.onnx)
    assert result.latency.p50_ms > 0
    X, _ = _held_out(table, result.features, "diagnosis")
    native = pickle.loads(pickle.dumps(result.native_model)).predict_proba(
        X.astype(np.float32).astype(np.float64)
    )
    exported = run_model(onnx_session(result.onnx), result.outputs, X).probabilities
    assert exported is not None
    assert np.allclose(native, exported, atol=1e-4)
    assert result.classes == [0, 1]
    assert result.outputs.classes == (0, 1)


def test_classifier_result_json_has_examples_and_drift_reference(
    classified: tuple[TrainingResult, list[ProgressEvent], pa.Table],
) -> None:
    result, _, table = classified
    data = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert data["task"] == "classification"
    assert data["label"] == "diagnosis"
    assert data["features"] == [f"f{index}" for index in range(30)]
    assert data["outputs"]["kind"] == "classifier"
    assert data["fidelity"]["passed"] is True
    assert len(data["inputExample"]) == 5
    assert len(data["inputExample"][0]) == 30
    held_out, _ = _held_out(table, result.features, "diagnosis")
    assert data["inputExample"] == held_out[:5].tolist()
    assert set(data["reference"]) == {*result.features, "__score__"}
    # The drift reference spans every row in time, not only the held-out tail.
    assert len(data["reference"]["f0"]) == table.num_rows == len(data["reference"]["__score__"])
    assert data["reference"]["f0"][0] == pytest.approx(table.column("f0")[0].as_py())
    assert data["params"] == next(c["params"] for c in data["leaderboard"] if c["fitsBudget"])


def test_a_rare_class_labelled_only_early_is_held_out_and_thresholded_by_best_f1() -> None:
    table = early_faults()
    result = train(table, TrainingRequest(task=Task.CLASSIFICATION, label="fault", time_budget_s=1.0))
    # Without blocks of the early rows in validation, the latest rows hold no fault and accuracy would rank.
    assert result.metric == "roc_auc"
    assert result.score > 0.9
    assert result.fidelity.passed
    X = np.column_stack([table.column(name).to_numpy() for name in result.features])
    produced = run_model(onnx_session(result.onnx), result.outputs, X)
    assert produced.labels is not None
    assert produced.probabilities is not None
    # Whether a threshold pays depends on the model the short search found; the labels follow it if it does.
    threshold = 0.5 if result.outputs.threshold is None else result.outputs.threshold
    assert produced.labels.tolist() == (produced.probabilities[:, 1] > threshold).astype(int).tolist()
    truth = table.column("fault").to_numpy()
    found = int((produced.labels & truth).sum())
    assert 2 * found / (produced.labels.sum() + truth.sum()) > 0.8
    fields = [prediction_fields(result.outputs, produced, row) for row in range(len(X))]
    assert [field["label"] for field in fields] == produced.labels.tolist()
    assert json.loads(json.dumps(result.to_json()))["outputs"]["threshold"] == threshold


def test_a_decision_threshold_is_set_only_where_it_finds_what_the_most_probable_class_misses() -> None:
    from sklearn.linear_model import LogisticRegression

    from edgewise.ml.export import to_onnx

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 2))
    y = (rng.random(2000) < 0.03).astype(np.int64)
    for shift, thresholded in ((1.5, True), (12.0, False)):
        shifted = X.copy()
        shifted[y == 1, 1] += shift
        model = LogisticRegression().fit(shifted[:1500], y[:1500])
        onnx, outputs = to_onnx(model, Task.CLASSIFICATION, 2)
        settled = settle_decision_threshold(shifted[1500:], y[1500:])(onnx, outputs)
        assert (settled.threshold is not None) is thresholded
        if settled.threshold is None:
            continue
        assert settled.threshold < 0.5
        produced = run_model(onnx_session(onnx), settled, shifted[1500:])
        assert produced.labels is not None
        assert produced.probabilities is not None
        assert int(np.argmax(produced.probabilities, axis=1).sum()) < int(produced.labels.sum())
        assert produced.labels.tolist() == (produced.probabilities[:, 1] > settled.threshold).tolist()
        assert check_fidelity(model, onnx, settled, shifted[1500:], Task.CLASSIFICATION).passed


def test_regression_learns_the_linear_target_in_time_order(
    regressed: tuple[TrainingResult, pa.Table],
) -> None:
    result, table = regressed
    assert result.metric == "r2"
    assert result.score > 0.9
    assert result.features == ["a", "b", "c", "d"]
    assert result.classes is None
    X, y = _held_out(table, result.features, "target")
    predicted = run_model(onnx_session(result.onnx), result.outputs, X).labels
    assert predicted is not None
    assert np.mean(np.abs(predicted - y)) < 0.5 * np.mean(np.abs(y - y.mean()))
    assert {c.learner for c in result.leaderboard} <= {"lgbm", "xgboost", "rf", "extra_tree"}
    assert result.fidelity.passed


def test_string_labels_are_classes_and_missing_rows_are_dropped() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 2))
    labels = np.where(X[:, 0] + X[:, 1] > 0, "fault", "ok").astype(object)
    labels[::20] = None
    column = X[:, 1].copy()
    column[5] = np.nan
    table = pa.table({"a": X[:, 0], "b": column, "state": pa.array(labels.tolist(), pa.string())})
    events: list[ProgressEvent] = []
    result = train(
        table, TrainingRequest(task=Task.CLASSIFICATION, label="state", time_budget_s=1.0), events.append
    )
    assert result.classes == ["fault", "ok"]
    assert result.outputs.classes == ("fault", "ok")
    assert "dropped 11 of 200 rows with a missing value" in [e.message for e in events]
    assert result.score > 0.8


def test_a_missing_label_column_is_named() -> None:
    table = pa.table({"a": np.arange(30.0), "b": np.arange(30.0)})
    with pytest.raises(
        TrainingError, match=r"^label: column 'fault' is not in the dataset \(columns: a, b\)"
    ):
        train(table, TrainingRequest(task=Task.CLASSIFICATION, label="fault", time_budget_s=1.0))


def test_a_text_feature_is_refused_by_name() -> None:
    table = pa.table({"a": np.arange(30.0), "site": ["x"] * 30, "y": np.arange(30.0)})
    with pytest.raises(TrainingError, match=r"^features: column 'site' holds string, not numbers"):
        train(
            table, TrainingRequest(task=Task.REGRESSION, label="y", features=("a", "site"), time_budget_s=1.0)
        )


def test_ray_address_without_ray_installed_names_the_package() -> None:
    request = TrainingRequest(
        task=Task.REGRESSION, label="target", time_budget_s=1.0, ray_address="ray://head:10001"
    )
    with pytest.raises(TrainingError, match=r"^rayAddress: .*pip install ray"):
        train(linear_regression(rows=60), request)
