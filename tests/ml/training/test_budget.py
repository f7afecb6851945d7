"""The edge budget: candidates exported in rank order until one passes the gate and fits the device."""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgewise.ml.errors import TrainingError
from edgewise.ml.training import (
    Candidate,
    Contender,
    EdgeBudget,
    EdgeChoice,
    ProgressEvent,
    Task,
    TrainingRequest,
    choose_for_edge,
    train,
)
from edgewise.ml.training.leaderboard import ProgressCallback
from tests.ml.training.tables import linear_regression


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    return X[:240], y[:240], X[240:]


def _contenders(X: np.ndarray, y: np.ndarray) -> list[Contender]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    def forest() -> object:
        return RandomForestClassifier(n_estimators=60, random_state=0, n_jobs=1).fit(X, y)

    def logistic() -> object:
        return LogisticRegression().fit(X, y)

    return [
        Contender(0, Candidate("rf", {"n_estimators": 60}, "roc_auc", 0.99), forest),
        Contender(1, Candidate("lrl1", {"C": 1.0}, "roc_auc", 0.98), logistic),
    ]


def _choose(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], budget: EdgeBudget, progress: ProgressCallback
) -> EdgeChoice:
    X, y, X_check = data
    return choose_for_edge(
        _contenders(X, y),
        task=Task.CLASSIFICATION,
        n_features=6,
        X_check=X_check,
        budget=budget,
        progress=progress,
    )


def test_without_limits_the_best_ranked_candidate_wins(
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    choice = _choose(data, EdgeBudget(), lambda event: None)
    assert choice.candidate.learner == "rf"
    assert choice.candidate.fits_budget is True
    assert choice.candidate.size_bytes == len(choice.onnx)
    assert choice.fidelity.passed
    assert set(choice.measured) == {0}


def test_a_small_size_limit_passes_over_the_big_forest(
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    events: list[ProgressEvent] = []
    choice = _choose(data, EdgeBudget(max_size_bytes=5_000), events.append)
    assert choice.candidate.learner == "lrl1"
    assert choice.candidate.size_bytes is not None
    assert choice.candidate.size_bytes <= 5_000
    assert choice.candidate.note == "chosen"
    forest = choice.measured[0]
    assert forest.fits_budget is False
    assert forest.size_bytes is not None
    assert forest.size_bytes > 5_000
    assert forest.note == f"{forest.size_bytes} bytes is over maxSizeBytes 5000"
    assert [e.candidate.learner for e in events if e.candidate is not None] == ["rf", "lrl1"]


def test_an_impossible_budget_names_the_smallest_and_fastest_seen(
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    events: list[ProgressEvent] = []
    with pytest.raises(TrainingError) as raised:
        _choose(data, EdgeBudget(max_size_bytes=10, max_latency_ms=1e-9), events.append)
    sizes = {e.candidate.learner: e.candidate.size_bytes for e in events if e.candidate is not None}
    message = str(raised.value)
    assert message.startswith(
        "budget: no candidate fits the edge budget (maxSizeBytes 10, maxLatencyMs 1e-09;"
    )
    assert f"the smallest export was {sizes['lrl1']} bytes (lrl1)" in message
    assert re.search(r"the fastest p50 [0-9.e-]+ ms \((rf|lrl1)\)", message)


def test_a_candidate_that_does_not_convert_is_noted_and_skipped(
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    from sklearn.neighbors import NearestCentroid

    X, y, X_check = data
    broken = Contender(0, Candidate("centroid", {}, "roc_auc", 1.0), lambda: NearestCentroid().fit(X, y))
    choice = choose_for_edge(
        [broken, *_contenders(X, y)[1:]],
        task=Task.CLASSIFICATION,
        n_features=6,
        X_check=X_check,
        budget=EdgeBudget(),
        progress=lambda event: None,
    )
    assert choice.candidate.learner == "lrl1"
    assert choice.measured[0].fits_budget is False
    assert choice.measured[0].note.startswith("not exported: ")


def test_train_with_an_impossible_size_names_the_best_size_seen() -> None:
    request = TrainingRequest(
        task=Task.REGRESSION, label="target", time_budget_s=1.0, budget=EdgeBudget(max_size_bytes=100)
    )
    with pytest.raises(
        TrainingError, match=r"^budget: no candidate fits .* the smallest export was \d+ bytes \(\w+\)"
    ):
        train(linear_regression(rows=200), request)


def test_an_export_that_drifts_from_its_model_fails_the_gate_with_its_reason(
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    from sklearn.linear_model import LogisticRegression

    from edgewise.protocol.model_package import OutputSpec

    X, y, X_check = data
    model = LogisticRegression().fit(X, y)

    def drift(onnx: bytes, outputs: OutputSpec) -> OutputSpec:
        # The native model moves after conversion, as if the converter had lost its intercept.
        model.intercept_ = model.intercept_ + 3.0
        return outputs

    only = Contender(0, Candidate("lrl1", {}, "roc_auc", 0.9), lambda: model)
    with pytest.raises(TrainingError) as raised:
        choose_for_edge(
            [only],
            task=Task.CLASSIFICATION,
            n_features=6,
            X_check=X_check,
            budget=EdgeBudget(),
            progress=lambda event: None,
            settle_outputs=drift,
        )
    message = str(raised.value)
    assert message.startswith(
        "fidelity: no candidate passed the export and fidelity gate (1 of 1 candidates tried): lrl1: "
    )
    assert "beyond the tolerance" in message
