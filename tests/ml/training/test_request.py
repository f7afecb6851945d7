"""The request and leaderboard JSON, the time split and the forecast's lag windows (no training here)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.ml.errors import TrainingError
from edgewise.ml.training import Candidate, EdgeBudget, ProgressEvent, Task, TrainingRequest, time_split
from edgewise.ml.training.forecast import lag_samples
from edgewise.ml.training.splits import MIN_TRAIN_ROWS, MIN_VALIDATION_ROWS


def test_request_round_trips_through_camel_case_json() -> None:
    request = TrainingRequest(
        task=Task.FORECAST,
        label="level",
        features=("temp", "rpm"),
        time_budget_s=2.5,
        budget=EdgeBudget(max_latency_ms=0.5, max_size_bytes=50_000),
        horizon=3,
        lags=6,
        seed=7,
        ray_address="ray://head:10001",
    )
    data = json.loads(json.dumps(request.to_json()))
    assert data == {
        "task": "forecast",
        "label": "level",
        "features": ["temp", "rpm"],
        "timeBudgetS": 2.5,
        "budget": {"maxLatencyMs": 0.5, "maxSizeBytes": 50_000},
        "horizon": 3,
        "lags": 6,
        "seed": 7,
        "rayAddress": "ray://head:10001",
    }
    assert TrainingRequest.from_json(data) == request


def test_request_defaults_fill_missing_fields() -> None:
    request = TrainingRequest.from_json({"task": "anomaly"})
    assert request == TrainingRequest(task=Task.ANOMALY)
    assert request.time_budget_s == 60.0
    assert request.budget == EdgeBudget()
    assert request.features == ()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "task"),
        ({"task": "clustering"}, "task"),
        ({"task": "classification"}, "label"),
        ({"task": "regression", "label": 3}, "label"),
        ({"task": "anomaly", "features": "temp"}, "features"),
        ({"task": "anomaly", "features": ["a", "a"]}, "features"),
        ({"task": "regression", "label": "y", "features": ["y"]}, "features"),
        ({"task": "anomaly", "timeBudgetS": 0}, "timeBudgetS"),
        ({"task": "anomaly", "timeBudgetS": "60"}, "timeBudgetS"),
        ({"task": "anomaly", "timeBudgetS": True}, "timeBudgetS"),
        ({"task": "anomaly", "budget": {"maxSizeBytes": 0}}, "budget.maxSizeBytes"),
        ({"task": "anomaly", "budget": {"maxSizeBytes": 1.5}}, "budget.maxSizeBytes"),
        ({"task": "anomaly", "budget": {"maxLatencyMs": -1}}, "budget.maxLatencyMs"),
        ({"task": "anomaly", "budget": {"maxBytes": 10}}, "budget"),
        ({"task": "anomaly", "budget": []}, "budget"),
        ({"task": "forecast", "label": "y", "horizon": 0}, "horizon"),
        ({"task": "forecast", "label": "y", "lags": 0}, "lags"),
        ({"task": "anomaly", "seed": -1}, "seed"),
        ({"task": "anomaly", "rayAddress": ""}, "rayAddress"),
        ({"task": "anomaly", "timeBudget": 5}, "request"),
    ],
)
def test_bad_request_fields_are_named(data: dict[str, object], field: str) -> None:
    with pytest.raises(TrainingError) as raised:
        TrainingRequest.from_json(data)
    assert str(raised.value).startswith(f"{field}: ")


def test_a_request_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(TrainingError, match=r"^request: must be a JSON object, not list"):
        TrainingRequest.from_json(["classification"])


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_FIELDS = {
    "request",
    "task",
    "label",
    "features",
    "timeBudgetS",
    "budget",
    "budget.maxLatencyMs",
    "budget.maxSizeBytes",
    "horizon",
    "lags",
    "seed",
    "rayAddress",
}
_KEYS = st.sampled_from(["task", "label", "features", "timeBudgetS", "budget", "horizon", "lags", "seed"])


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_KEYS, _JSON | st.sampled_from(["anomaly", "regression", "y"]), max_size=6))
def test_any_json_parses_or_raises_training_error_naming_a_field(data: dict[str, object]) -> None:
    try:
        request = TrainingRequest.from_json(data)
    except TrainingError as error:
        message = str(error)
    else:
        assert TrainingRequest.from_json(request.to_json()) == request
        return
    assert message.split(": ", 1)[0] in _FIELDS


def test_candidate_json_is_camel_case_and_round_trips() -> None:
    candidate = Candidate(
        "lgbm", {"num_leaves": 4}, "roc_auc", 0.9, size_bytes=1200, latency_ms=0.01, fits_budget=True
    )
    data = candidate.to_json()
    assert data == {
        "learner": "lgbm",
        "params": {"num_leaves": 4},
        "metric": "roc_auc",
        "score": 0.9,
        "sizeBytes": 1200,
        "latencyMs": 0.01,
        "fitsBudget": True,
        "note": "",
    }
    assert Candidate.from_json(json.loads(json.dumps(data))) == candidate
    failed = Candidate("rf", {}, "r2", math.nan).to_json()
    assert failed["score"] is None
    assert json.dumps(failed, allow_nan=False)


def test_progress_events_have_the_job_line_shape() -> None:
    assert ProgressEvent(kind="phase", message="searching").to_json() == {
        "event": "phase",
        "message": "searching",
    }
    candidate = Candidate("rf", {}, "r2", 0.5)
    assert ProgressEvent(kind="candidate", candidate=candidate).to_json() == {
        "event": "candidate",
        "candidate": candidate.to_json(),
    }


def test_split_holds_out_the_latest_rows_by_timestamp() -> None:
    stamps = np.array(
        [50, 10, 40, 20, 30, 0, 90, 60, 80, 70, 100, 110, 130, 120, 140, 150, 160, 170, 180, 190]
    )
    split = time_split(stamps, len(stamps))
    assert len(split.validation) == 5
    assert len(split.train) == 15
    assert stamps[split.train].max() < stamps[split.validation].min()
    assert list(stamps[split.validation]) == [150, 160, 170, 180, 190]
    assert list(stamps[split.train]) == sorted(stamps[split.train])


def test_split_keeps_table_order_without_timestamps_and_for_equal_times() -> None:
    assert list(time_split(None, 20).validation) == [15, 16, 17, 18, 19]
    same = np.zeros(20)
    assert list(time_split(same, 20).validation) == [15, 16, 17, 18, 19]


def test_split_with_labels_holds_out_the_latest_block_of_a_class_the_latest_rows_lack() -> None:
    labels = np.zeros(1000, dtype=np.int64)
    labels[100:130] = 1
    labels[310:320] = 1
    split = time_split(None, 1000, labels=labels)
    assert list(split.validation) == [*range(300, 400), *range(800, 1000)]
    assert list(split.train) == [*range(300), *range(400, 800)]
    assert labels[split.validation].sum() == 10
    assert labels[split.train].sum() == 30


def test_split_with_labels_changes_nothing_when_the_latest_rows_hold_every_class() -> None:
    labels = np.zeros(100, dtype=np.int64)
    labels[::4] = 1  # five in the latest fifth
    split = time_split(None, 100, labels=labels)
    assert list(split.validation) == list(range(80, 100))


def test_split_with_labels_keeps_a_class_to_learn_from_and_at_most_half_the_rows() -> None:
    rare = np.zeros(100, dtype=np.int64)
    rare[3] = 1  # one row: nothing to spare for validation
    assert list(time_split(None, 100, labels=rare).validation) == list(range(80, 100))
    early = np.zeros(100, dtype=np.int64)
    early[0:8] = 1  # all in one block: holding it out would leave none to learn from
    assert list(time_split(None, 100, labels=early).validation) == list(range(80, 100))
    spread = np.zeros(1000, dtype=np.int64)
    spread[5:800:100] = 1  # one row in each block: four wanted, three fit in half the rows
    split = time_split(None, 1000, labels=spread)
    assert list(split.validation) == list(range(500, 1000))
    assert spread[split.validation].sum() == 3
    with pytest.raises(TrainingError, match=r"^labels: has 3 values for 100 rows"):
        time_split(None, 100, labels=rare[:3])


def test_split_needs_enough_rows() -> None:
    needed = MIN_TRAIN_ROWS + MIN_VALIDATION_ROWS
    with pytest.raises(TrainingError, match=rf"^rows: the dataset has {needed - 1} usable rows"):
        time_split(None, needed - 1)


def test_lag_windows_stay_within_a_thing_and_target_the_horizon() -> None:
    series = np.array([0.0, 1, 2, 3, 4, 100, 101, 102, 103, 104])
    groups = np.array(["a"] * 5 + ["b"] * 5, dtype=object)
    samples = lag_samples(
        series,
        np.empty((10, 0)),
        label="v",
        extra_names=[],
        lags=3,
        horizon=2,
        groups=groups,
        times=np.arange(10.0),
    )
    assert samples.feature_names == ["v__lag_2", "v__lag_1", "v__lag_0"]
    assert samples.X.tolist() == [[0, 1, 2], [100, 101, 102]]
    assert samples.y.tolist() == [4, 104]
    assert samples.times is not None
    assert samples.times.tolist() == [2.0, 7.0]


def test_lag_windows_skip_gaps_and_append_extra_features() -> None:
    series = np.array([0.0, 1, np.nan, 3, 4, 5, 6, 7])
    extra = np.arange(8.0).reshape(8, 1) * 10
    samples = lag_samples(
        series, extra, label="v", extra_names=["rpm"], lags=2, horizon=1, groups=None, times=None
    )
    assert samples.feature_names == ["v__lag_1", "v__lag_0", "rpm"]
    assert samples.X.tolist() == [[3, 4, 40], [4, 5, 50], [5, 6, 60]]
    assert samples.y.tolist() == [5, 6, 7]


def test_a_series_too_short_for_the_window_is_refused() -> None:
    with pytest.raises(TrainingError, match=r"^lags: "):
        lag_samples(
            np.arange(5.0),
            np.empty((5, 0)),
            label="v",
            extra_names=[],
            lags=4,
            horizon=2,
            groups=None,
            times=None,
        )
