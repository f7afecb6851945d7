"""Anomaly detection (labelled and unlabelled) and forecasting end to end, through the ONNX export."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from edgewise.ml.export import onnx_session, run_model
from edgewise.ml.training import Task, TrainingRequest, TrainingResult, train
from edgewise.ml.training.anomaly import (
    DEFAULT_CONTAMINATION,
    KEEP_FITTED,
    SETTINGS,
    best_f1,
    best_f1_threshold,
    detector_pipeline,
    random_settings,
    search_anomaly,
    synthetic_outliers,
)
from edgewise.ml.training.leaderboard import ProgressEvent
from tests.ml.training.tables import gaussian_blob, sine, water_flow

DETECTORS = {"isolation_forest", "local_outlier_factor", "one_class_svm", "gaussian_mixture"}


@pytest.fixture(scope="module")
def water() -> tuple[TrainingResult, pa.Table]:
    table = water_flow()
    return train(table, TrainingRequest(task=Task.ANOMALY, time_budget_s=1.0)), table


@pytest.fixture(scope="module")
def blob() -> tuple[TrainingResult, pa.Table]:
    table = gaussian_blob()
    return train(table, TrainingRequest(task=Task.ANOMALY, time_budget_s=1.0, seed=2)), table


@pytest.fixture(scope="module")
def forecast() -> tuple[TrainingResult, pa.Table]:
    table = sine()
    request = TrainingRequest(task=Task.FORECAST, label="level", time_budget_s=1.0, horizon=3, lags=10)
    return train(table, request), table


def _scores(result: TrainingResult, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    outputs = run_model(onnx_session(result.onnx), result.outputs, X)
    assert outputs.scores is not None
    assert outputs.labels is not None
    return outputs.scores, outputs.labels


def test_water_flow_is_scored_on_its_labels_and_flags_the_low_flow(
    water: tuple[TrainingResult, pa.Table],
) -> None:
    result, table = water
    assert result.metric == "f1"
    assert result.label == "label"
    assert result.features == ["flow"]
    assert result.score > 0.95
    assert result.fidelity.passed
    assert {c.learner for c in result.leaderboard} <= DETECTORS
    assert len(result.leaderboard) >= 4
    held_out = slice(240, 300)
    flow = table.column("flow").to_numpy()[held_out].reshape(-1, 1)
    truth = table.column("label").to_numpy()[held_out]
    _, flags = _scores(result, flow)
    true_positives = int((flags & truth).sum())
    f1 = 2 * true_positives / (flags.sum() + truth.sum())
    assert truth.sum() > 0
    assert f1 > 0.9
    assert result.outputs.threshold is not None
    assert result.outputs.kind == "anomaly"


def test_unlabelled_data_is_scored_against_synthetic_outliers(blob: tuple[TrainingResult, pa.Table]) -> None:
    result, table = blob
    assert result.metric == "synthetic_roc_auc"
    assert result.label is None
    assert result.features == ["x", "y", "z"]
    assert 0.7 < result.score <= 1.0
    X = np.column_stack([table.column(name).to_numpy() for name in result.features])
    _, training_flags = _scores(result, X[:400])
    assert training_flags.mean() == pytest.approx(DEFAULT_CONTAMINATION, abs=0.01)
    scores, flags = _scores(result, np.array([[0.0, 0.0, 0.0], [6.0, -6.0, 6.0]]))
    assert flags.tolist() == [0, 1]
    assert scores[1] > scores[0]
    # The drift reference spans every row, not only the held-out tail.
    assert len(result.reference["__score__"]) == table.num_rows
    assert result.reference["x"][0] == pytest.approx(X[0, 0])


def test_the_search_draws_seeded_settings_after_the_fixed_round_until_the_budget_is_spent() -> None:
    X = np.random.default_rng(0).normal(size=(80, 2))
    for learner, params in SETTINGS[:4]:  # scikit-learn's imports first, so that the budget goes to fits
        detector_pipeline(learner, params, rows=60, seed=0).fit(X[:60])
    events: list[ProgressEvent] = []
    search = search_anomaly(X[:60], None, X[60:], None, time_budget_s=3.0, seed=3, progress=events.append)
    fixed = [(learner, params) for learner, params in SETTINGS]
    tried = [(c.learner, c.params) for c in search.leaderboard]
    assert len(tried) > len(SETTINGS)
    assert all(setting in tried for setting in fixed)
    drawn = [setting for setting in tried if setting not in fixed]
    assert {learner for learner, _ in drawn} <= DETECTORS
    assert len({repr(setting) for setting in tried}) == len(tried)
    assert sorted(c.score for c in search.leaderboard) == sorted(
        e.candidate.score for e in events if e.candidate is not None
    )
    # Models beyond the best few are not kept: the edge budget refits them from their settings.
    last = search.contenders[-1]
    assert len(search.contenders) > KEEP_FITTED
    refitted = last.build()
    assert refitted is not last.build()
    assert refitted.score_samples(X[60:]).shape == (20,)


def test_random_settings_stay_in_their_ranges_and_follow_the_seed() -> None:
    first = [random_settings(np.random.default_rng(5), 4) for _ in range(2)]
    assert first[0] == first[1]
    rng = np.random.default_rng(6)
    drawn = [random_settings(rng, 4) for _ in range(400)]
    assert {learner for learner, _ in drawn} == DETECTORS
    for learner, params in drawn:
        assert params.get("scaler", "standard") in ("standard", "robust")
        if learner == "isolation_forest":
            assert 50 <= params["n_estimators"] <= 300
            assert params["max_samples"] in (64, 128, 256, 512)
        elif learner == "local_outlier_factor":
            assert 5 <= params["n_neighbors"] <= 100
        elif learner == "one_class_svm":
            assert 0.003 <= params["nu"] <= 0.3
            assert 0.1 / 4 <= params["gamma"] <= 10 / 4
        else:
            assert 1 <= params["n_components"] <= 10
            assert params["covariance_type"] in ("full", "tied", "diag", "spherical")


def test_best_f1_threshold_cuts_between_scores() -> None:
    scores = np.array([0.1, 0.9, 0.3, 0.8, 0.2, 0.35])
    labels = np.array([0, 1, 0, 1, 0, 1])
    threshold = best_f1_threshold(scores, labels)
    assert threshold == pytest.approx(0.325)
    assert ((scores > threshold).astype(int) == labels).all()
    assert best_f1(scores, labels) == 1.0
    # Flagging the top four (0.9, 0.8, 0.35, 0.3) finds all three with one false alarm: F1 = 2 * 3 / (4 + 3).
    assert best_f1(scores, np.array([0, 1, 1, 1, 0, 0])) == pytest.approx(6 / 7)


def test_synthetic_outliers_fill_the_widened_box() -> None:
    rows = np.column_stack([np.linspace(0, 10, 50), np.linspace(100, 200, 50)])
    points = synthetic_outliers(rows, 2_000, np.random.default_rng(0))
    assert points.shape == (2_000, 2)
    assert points[:, 0].min() < 0
    assert points[:, 0].max() > 10
    assert points[:, 1].min() < 100
    assert points[:, 0].min() >= -1.0 - 1e-9
    assert points[:, 1].max() <= 210.0 + 1e-9


def test_forecast_beats_persistence_on_the_sine(forecast: tuple[TrainingResult, pa.Table]) -> None:
    result, table = forecast
    assert result.metric == "neg_mae"
    assert result.label == "level"
    assert result.features == [f"level__lag_{k}" for k in range(9, -1, -1)]
    level = table.column("level").to_numpy()
    ends = np.arange(9, len(level) - 3)[-150:]
    X = np.stack([level[end - 9 : end + 1] for end in ends])
    truth = level[ends + 3]
    predicted = run_model(onnx_session(result.onnx), result.outputs, X).labels
    assert predicted is not None
    persistence = np.mean(np.abs(level[ends] - truth))
    assert np.mean(np.abs(predicted - truth)) < persistence / 2
    assert -result.score < persistence / 2
    assert result.fidelity.passed
