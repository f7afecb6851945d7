"""Unsupervised anomaly search: scaled detectors of four families, searched at random until the budget is spent.

Every candidate is a scaler (``StandardScaler``, sometimes ``RobustScaler``) followed by an IsolationForest, a
LocalOutlierFactor (``novelty=True``, so it can score new rows), a OneClassSVM or a GaussianMixture; all four
convert to ONNX. The fixed ``SETTINGS`` come first, cheapest family first, one round of all four at a time (a
short budget gets these); then settings drawn at random (seeded) from each family's ranges until the time
budget is spent. No random setting starts when its family's slowest fit so far would overrun the budget.
Each is scored on the held-out (latest) rows. When those hold both classes of the label column, the score is
the F1 of the best cut (the threshold the detector would get): it is the measure the flags are judged by,
and on the simulator's faults it picked detectors that did better on later rows than ranking by ROC AUC did.
Otherwise it is the ROC AUC against synthetic outliers (uniform points in the bounding box of the scaled
training rows, widened by ``WIDEN`` of its span on each side), which rewards a detector for separating the
data from the space around it. When labels exist, detectors learn from the training rows labelled normal, since anomalies in the
training data would teach them that anomalies are normal. The anomaly score is the detector's raw score
times ``score_sign`` (higher = more anomalous); the threshold is the best-F1 cut of the held-out labels, or
else the score that flags the training contamination share (the labelled rate, or ``DEFAULT_CONTAMINATION``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
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
#: The detector families, and what the random search draws for a GaussianMixture.
FAMILIES: Final = ("isolation_forest", "local_outlier_factor", "one_class_svm", "gaussian_mixture")
COVARIANCE_TYPES: Final = ("full", "tied", "diag", "spherical")
#: The scalers a setting may put before its detector (``params["scaler"]``), and how often ``robust`` is drawn.
SCALERS: Final = ("standard", "robust")
ROBUST_SHARE = 0.25
#: Fitted models kept during the search (the best ones); the rest are refitted if the edge budget reaches them.
KEEP_FITTED = 8
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
        X_score, y_score, metric = X_validation, y_validation, "f1"
        target = "the held-out labels"
    else:
        outliers = synthetic_outliers(fit_rows, max(50, min(MAX_SYNTHETIC, len(X_validation))), rng)
        X_score = np.vstack([X_validation, outliers])
        y_score = np.concatenate([np.zeros(len(X_validation), np.int64), np.ones(len(outliers), np.int64)])
        metric, target = "synthetic_roc_auc", f"{len(outliers)} synthetic outliers"
    how = "best F1 on" if labelled else "ROC AUC against"
    progress(phase(f"searching anomaly detectors for {time_budget_s:g} s ({how} {target})"))
    deadline = started + time_budget_s
    candidates: list[Candidate] = []
    fitted: dict[
        int, tuple[float, object]
    ] = {}  # the best KEEP_FITTED candidates' models, by id of the candidate
    fit_seconds: dict[str, float] = {}
    tried: set[str] = set()
    for index, (learner, params) in enumerate(_settings(rng, X_train.shape[1])):
        now = time.monotonic()
        if candidates and now >= deadline:
            break
        if index >= len(SETTINGS) and now + min(fit_seconds.values()) > deadline:
            break
        if index >= len(SETTINGS) and now + fit_seconds.get(learner, 0.0) > deadline:
            continue  # this family's slowest fit would overrun the budget; a cheaper family may still fit
        key = f"{learner} {sorted(params.items())}"
        if key in tried:
            continue
        tried.add(key)
        model = detector_pipeline(learner, params, rows=len(fit_rows), seed=seed)
        try:
            with quiet_convergence():
                model.fit(fit_rows)
            raw = model.score_samples(X_score)
            anomaly_scores = -np.asarray(raw, dtype=np.float64)
            if labelled:
                score = best_f1(anomaly_scores, y_score)
            else:
                score = float(roc_auc_score(y_score, anomaly_scores))
        except (ValueError, np.linalg.LinAlgError) as error:
            failed = Candidate(learner, dict(params), metric, float("nan"), note=f"fit failed: {error}")
            progress(ProgressEvent(kind="candidate", candidate=failed))
            continue
        finally:
            fit_seconds[learner] = max(fit_seconds.get(learner, 0.0), time.monotonic() - now)
        candidate = Candidate(learner=learner, params=dict(params), metric=metric, score=score)
        candidates.append(candidate)
        fitted[id(candidate)] = (score, model)
        progress(ProgressEvent(kind="candidate", candidate=candidate))
        if len(fitted) > KEEP_FITTED:
            # A long search fits hundreds of models; only those the edge budget is likely to reach are kept.
            del fitted[min(fitted, key=lambda ident: fitted[ident][0])]
    if not candidates:
        raise TrainingError("features: no anomaly detector could be fitted on these rows")
    board = ranked(candidates)
    contenders = [
        Contender(
            row=row,
            candidate=candidate,
            build=_fitted(fitted[id(candidate)][1])
            if id(candidate) in fitted
            else _refit(candidate, fit_rows, seed),
        )
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
    """A scaler (``params["scaler"]``: ``standard``, the default, or ``robust``) then the ``learner`` detector
    with the other ``params`` (samples/neighbours/components capped by ``rows``)."""
    from sklearn.ensemble import IsolationForest
    from sklearn.mixture import GaussianMixture
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import RobustScaler, StandardScaler
    from sklearn.svm import OneClassSVM

    settings = dict(params)
    scaler_name = settings.pop("scaler", "standard")
    if scaler_name not in SCALERS:
        raise TrainingError(f"params.scaler: {scaler_name!r} is not one of {', '.join(SCALERS)}")
    detector: object
    if learner == "isolation_forest":
        samples = settings.pop("max_samples", "auto")
        if isinstance(samples, int):
            samples = min(samples, rows)
        detector = IsolationForest(**settings, max_samples=samples, random_state=seed, n_jobs=1)
    elif learner == "local_outlier_factor":
        neighbours = min(int(settings["n_neighbors"]), rows - 1)  # type: ignore[call-overload]
        detector = LocalOutlierFactor(n_neighbors=neighbours, novelty=True, n_jobs=1)
    elif learner == "one_class_svm":
        detector = OneClassSVM(**{"gamma": "scale", **settings})
    elif learner == "gaussian_mixture":
        components = min(int(settings["n_components"]), rows)  # type: ignore[call-overload]
        covariance = str(settings.get("covariance_type", "full"))
        detector = GaussianMixture(n_components=components, covariance_type=covariance, random_state=seed)
    else:
        raise TrainingError(f"learner: {learner!r} is not an anomaly detector this search knows")
    scaler = RobustScaler() if scaler_name == "robust" else StandardScaler()
    return Pipeline([("scale", scaler), ("detector", detector)])


def random_settings(rng: np.random.Generator, n_features: int) -> tuple[str, dict[str, object]]:
    """One family (each equally likely) and a setting drawn from its ranges (see the code for them).

    IsolationForest's ``contamination`` is not drawn: it only moves its ``decision_function`` by a constant,
    which changes neither the ROC AUC nor the threshold (chosen from scores, see ``settle_threshold``); nor is
    ``max_features``: skl2onnx converts only forests whose trees see every feature.
    """
    learner = str(rng.choice(FAMILIES))
    params: dict[str, object]
    if learner == "isolation_forest":
        params = {
            "n_estimators": int(rng.integers(50, 301)),
            "max_samples": [64, 128, 256, 512][int(rng.integers(4))],
        }
    elif learner == "local_outlier_factor":
        params = {"n_neighbors": round(float(10 ** rng.uniform(np.log10(5), np.log10(100))))}
    elif learner == "one_class_svm":
        # The RBF width around scikit-learn's "scale" (1 / n_features on standardized data), a decade each way.
        params = {
            "nu": round(float(10 ** rng.uniform(-2.5, np.log10(0.3))), 5),
            "gamma": round(float(10 ** rng.uniform(-1, 1)) / n_features, 6),
        }
    else:
        params = {
            "n_components": int(rng.integers(1, 11)),
            "covariance_type": str(rng.choice(COVARIANCE_TYPES)),
        }
    if rng.random() < ROBUST_SHARE:
        params["scaler"] = "robust"
    return learner, params


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


def best_f1(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> float:
    """The F1 on ``labels`` of the best ``score > cut`` flags (the cut ``best_f1_threshold`` gives)."""
    f1, _, best = _f1_curve(scores, labels)
    return float(f1[best])


def best_f1_threshold(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> float:
    """The cut between two neighbouring scores whose ``score > cut`` flags give the best F1 on ``labels``."""
    _, ordered, best = _f1_curve(scores, labels)
    if best == len(ordered) - 1:
        return float(ordered[-1] - max(1.0, abs(ordered[-1])) * 1e-6)
    return float((ordered[best] + ordered[best + 1]) / 2)


def _f1_curve(
    scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int]:
    """F1 of flagging the top 1, 2, ... scores, the scores in that order, and the best expressible position."""
    order = np.argsort(-scores, kind="stable")
    ordered, truth = scores[order], labels[order]
    true_positives = np.cumsum(truth)
    flagged = np.arange(1, len(ordered) + 1)
    f1 = np.asarray(2 * true_positives / (flagged + truth.sum()), dtype=np.float64)
    # Only a cut between two different scores can be expressed as "score > threshold".
    distinct = np.append(ordered[:-1] > ordered[1:], True)
    return f1, ordered, int(np.argmax(np.where(distinct, f1, -1.0)))


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


def _settings(rng: np.random.Generator, n_features: int) -> Iterator[tuple[str, dict[str, object]]]:
    """``SETTINGS``, then random settings without end (the caller stops at the budget)."""
    yield from SETTINGS
    while True:
        yield random_settings(rng, n_features)


def _fitted(model: object) -> Any:
    return lambda: model


def _refit(candidate: Candidate, rows: npt.NDArray[np.float64], seed: int) -> Any:
    def build() -> object:
        model = detector_pipeline(candidate.learner, candidate.params, rows=len(rows), seed=seed)
        with quiet_convergence():
            model.fit(rows)
        return model

    return build
