"""Unsupervised anomaly search: scaled detectors of four families, a few settings each, within the budget.

Every candidate is a ``StandardScaler`` followed by an IsolationForest, a LocalOutlierFactor
(``novelty=True``, so it can score new rows), a OneClassSVM or a GaussianMixture; all four convert to ONNX.
Settings are tried cheapest family first, round by round, until the time budget is spent. Each is scored by
ROC AUC on the held-out (latest) rows: against the label column when those rows hold both classes, otherwise
against synthetic outliers (uniform points in the bounding box of the scaled training rows, widened by
``WIDEN`` of its span on each side), which rewards a detector for separating the data from the space around
it. When labels exist, detectors learn from the training rows labelled normal, since anomalies in the
training data would teach them that anomalies are normal. The anomaly score is the detector's raw score
times ``score_sign`` (higher = more anomalous); the threshold is the best-F1 cut of the held-out labels, or
else the score that flags the training contamination share (the labelled rate, or ``DEFAULT_CONTAMINATION``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from edgewise.ml.errors import TrainingError
from edgewise.ml.training.budget import Contender
from edgewise.ml.training.leaderboard import Candidate, ProgressCallback, ProgressEvent, phase, ranked
from edgewise.ml.training.supervised import quiet_convergence

if TYPE_CHECKING:
    import numpy.typing as npt

    from edgewise.protocol.model_package import OutputSpec

#: Settings tried, one round of every family at a time, so a short budget still covers all four.
SETTINGS: Final[tuple[tuple[str, dict[str, object]], ...]] = (
    ("gaussian_mixture", {"n_components": 1}),
    ("isolation_forest", {"n_estimators": 100}),
    ("local_outlier_factor", {"n_neighbors": 20}),
    ("one_class_svm", {"nu": 0.05}),
    ("gaussian_mixture", {"n_components": 3}),
    ("isolation_forest", {"n_estimators": 50, "max_samples": 128}),
    ("local_outlier_factor", {"n_neighbors": 10}),
    ("one_class_svm", {"nu": 0.01}),
    ("gaussian_mixture", {"n_components": 6}),
    ("local_outlier_factor", {"n_neighbors": 40}),
    ("one_class_svm", {"nu": 0.1}),
    ("isolation_forest", {"n_estimators": 200}),
)
#: Training rows a detector sees at most: LOF embeds them in its model and OneClassSVM fits in O(n²).
MAX_FIT_ROWS = 2_000
#: How far the synthetic outliers' box extends beyond the data, as a share of its span per side.
WIDEN = 0.1
#: The share of training rows flagged when no labels say better.
DEFAULT_CONTAMINATION = 0.01
#: The most synthetic outliers drawn (as many as held-out rows, at least 50).
MAX_SYNTHETIC = 2_000


@dataclass(frozen=True)
class AnomalySearch:
    """The leaderboard (best first), the contenders in rank order, and what the threshold is chosen from."""

    metric: str
    leaderboard: list[Candidate]
    contenders: list[Contender]
    labelled_validation: bool
    contamination: float


def search_anomaly(
    X_train: npt.NDArray[np.float64],
    y_train: npt.NDArray[np.int64] | None,
    X_validation: npt.NDArray[np.float64],
    y_validation: npt.NDArray[np.int64] | None,
    *,
    time_budget_s: float,
    seed: int,
    progress: ProgressCallback,
) -> AnomalySearch:
    """Fit and score the ``SETTINGS`` in order until ``time_budget_s`` is spent (at least one is always fitted)."""
    from sklearn.metrics import roc_auc_score

    started = time.monotonic()
    rng = np.random.default_rng(seed)
    fit_rows = _fit_rows(X_train, y_train, rng)
    labelled = y_validation is not None and len(set(y_validation.tolist())) == 2
    if labelled:
        assert y_validation is not None
        X_score, y_score, metric = X_validation, y_validation, "roc_auc"
        target = "the held-out labels"
    else:
        outliers = synthetic_outliers(fit_rows, max(50, min(MAX_SYNTHETIC, len(X_validation))), rng)
        X_score = np.vstack([X_validation, outliers])
        y_score = np.concatenate([np.zeros(len(X_validation), np.int64), np.ones(len(outliers), np.int64)])
        metric, target = "synthetic_roc_auc", f"{len(outliers)} synthetic outliers"
    progress(phase(f"searching anomaly detectors for {time_budget_s:g} s (ROC AUC against {target})"))
    scored: list[tuple[Candidate, object]] = []
    for learner, params in SETTINGS:
        if scored and time.monotonic() - started >= time_budget_s:
            break
        model = detector_pipeline(learner, params, rows=len(fit_rows), seed=seed)
        try:
            with quiet_convergence():
                model.fit(fit_rows)
            raw = model.score_samples(X_score)
            score = float(roc_auc_score(y_score, -np.asarray(raw, dtype=np.float64)))
        except (ValueError, np.linalg.LinAlgError) as error:
            failed = Candidate(learner, dict(params), metric, float("nan"), note=f"fit failed: {error}")
            progress(ProgressEvent(kind="candidate", candidate=failed))
            continue
        candidate = Candidate(learner=learner, params=dict(params), metric=metric, score=score)
        scored.append((candidate, model))
        progress(ProgressEvent(kind="candidate", candidate=candidate))
    if not scored:
        raise TrainingError("features: no anomaly detector could be fitted on these rows")
    board = ranked([candidate for candidate, _ in scored])
    models = {id(candidate): model for candidate, model in scored}
    contenders = [
        Contender(row=row, candidate=candidate, build=_fitted(models[id(candidate)]))
        for row, candidate in enumerate(board)
    ]
    return AnomalySearch(
        metric=metric,
        leaderboard=board,
        contenders=contenders,
        labelled_validation=labelled,
        contamination=training_contamination(y_train),
    )


def detector_pipeline(learner: str, params: dict[str, object], *, rows: int, seed: int) -> Any:
    """``StandardScaler`` then the ``learner`` detector with ``params`` (neighbours/components capped by ``rows``)."""
    from sklearn.ensemble import IsolationForest
    from sklearn.mixture import GaussianMixture
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import OneClassSVM

    detector: object
    if learner == "isolation_forest":
        detector = IsolationForest(**params, random_state=seed, n_jobs=1)
    elif learner == "local_outlier_factor":
        neighbours = min(int(params["n_neighbors"]), rows - 1)  # type: ignore[call-overload]
        detector = LocalOutlierFactor(n_neighbors=neighbours, novelty=True, n_jobs=1)
    elif learner == "one_class_svm":
        detector = OneClassSVM(**params, gamma="scale")
    elif learner == "gaussian_mixture":
        components = min(int(params["n_components"]), rows)  # type: ignore[call-overload]
        detector = GaussianMixture(n_components=components, covariance_type="full", random_state=seed)
    else:
        raise TrainingError(f"learner: {learner!r} is not an anomaly detector this search knows")
    return Pipeline([("scale", StandardScaler()), ("detector", detector)])


def synthetic_outliers(
    rows: npt.NDArray[np.float64], count: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """``count`` points uniform in the widened bounding box of ``rows`` after standard scaling, unscaled."""
    mean = rows.mean(axis=0)
    scale = rows.std(axis=0)
    scale[scale == 0] = 1.0
    scaled = (rows - mean) / scale
    low, high = scaled.min(axis=0), scaled.max(axis=0)
    span = np.maximum(high - low, 1.0)
    points = rng.uniform(low - WIDEN * span, high + WIDEN * span, size=(count, rows.shape[1]))
    return np.asarray(points * scale + mean, dtype=np.float64)


def training_contamination(y_train: npt.NDArray[np.int64] | None) -> float:
    """The labelled anomaly share of the training rows (at most one half), or ``DEFAULT_CONTAMINATION``."""
    if y_train is None or not y_train.any():
        return DEFAULT_CONTAMINATION
    return float(min(0.5, y_train.mean()))


def best_f1_threshold(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> float:
    """The cut between two neighbouring scores whose ``score > cut`` flags give the best F1 on ``labels``."""
    order = np.argsort(-scores, kind="stable")
    ordered, truth = scores[order], labels[order]
    true_positives = np.cumsum(truth)
    flagged = np.arange(1, len(ordered) + 1)
    f1 = 2 * true_positives / (flagged + truth.sum())
    # Only a cut between two different scores can be expressed as "score > threshold".
    distinct = np.append(ordered[:-1] > ordered[1:], True)
    best = int(np.argmax(np.where(distinct, f1, -1.0)))
    if best == len(ordered) - 1:
        return float(ordered[-1] - max(1.0, abs(ordered[-1])) * 1e-6)
    return float((ordered[best] + ordered[best + 1]) / 2)


def settle_threshold(
    search: AnomalySearch,
    X_train: npt.NDArray[np.float64],
    X_validation: npt.NDArray[np.float64],
    y_validation: npt.NDArray[np.int64] | None,
) -> Any:
    """The ``settle_outputs`` hook of the edge budget: the threshold, computed on the ONNX model's own scores.

    Scores come from the exported model, as the device computes them, so the threshold cannot drift from
    the native model's scale (float32, a converter's offset).
    """
    from edgewise.ml.export import onnx_session, run_model

    def settle(onnx: bytes, outputs: OutputSpec) -> OutputSpec:
        session = onnx_session(onnx)
        if search.labelled_validation and y_validation is not None:
            scores = run_model(session, outputs, X_validation).scores
            assert scores is not None
            threshold = best_f1_threshold(scores, y_validation)
        else:
            scores = run_model(session, outputs, X_train).scores
            assert scores is not None
            threshold = float(np.quantile(scores, 1.0 - search.contamination))
        return dataclasses.replace(outputs, threshold=threshold)

    return settle


def _fit_rows(
    X_train: npt.NDArray[np.float64], y_train: npt.NDArray[np.int64] | None, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    rows = X_train
    if y_train is not None:
        normal = X_train[y_train == 0]
        if len(normal) >= 10:
            rows = normal
    if len(rows) > MAX_FIT_ROWS:
        rows = rows[np.sort(rng.choice(len(rows), MAX_FIT_ROWS, replace=False))]
    return rows


def _fitted(model: object) -> Any:
    return lambda: model
