"""Supervised search: FLAML AutoML over the learners that convert to ONNX, read back as a leaderboard.

FLAML tries learners and settings within the time budget, cheap ones first, scoring each on the held-out
(latest) rows given as ``X_val``. Its trial log (``log_type="all"``) is read back into leaderboard rows:
learner, settings and validation score turned higher-is-better; while the search runs, each learner's new
best is reported as it is logged. Only learners with an ONNX converter are searched (``lgbm``, ``xgboost``,
``rf``, ``extra_tree``, plus ``lrl1`` for classification), so any row can be exported; each contender is
refitted from its settings on the training rows when the edge budget reaches it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edgewise.ml.errors import TrainingError
from edgewise.ml.training.budget import Contender
from edgewise.ml.training.leaderboard import Candidate, ProgressCallback, ProgressEvent, phase, ranked
from edgewise.ml.training.tasks import Task

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import numpy.typing as npt

    from edgewise.protocol.model_package import OutputSpec

#: The FLAML learners searched per task: those whose models convert to ONNX exactly.
LEARNERS: Final[dict[Task, tuple[str, ...]]] = {
    Task.CLASSIFICATION: ("lgbm", "xgboost", "rf", "extra_tree", "lrl1"),
    Task.REGRESSION: ("lgbm", "xgboost", "rf", "extra_tree"),
}
#: The most leaderboard rows kept besides each learner's best (a long search logs thousands of trials).
LEADERBOARD_ROWS = 100
#: How much a decision threshold must raise the held-out F1 over the most probable class to be used.
THRESHOLD_GAIN = 0.05
#: How often the trial log is read for new bests while FLAML searches.
WATCH_INTERVAL_S = 0.5

#: FLAML metric name -> (the name the leaderboard shows, the higher-is-better score of a FLAML loss).
_SCORES: Final[dict[str, tuple[str, Callable[[float], float]]]] = {
    "roc_auc": ("roc_auc", lambda loss: 1.0 - loss),
    "accuracy": ("accuracy", lambda loss: 1.0 - loss),
    "r2": ("r2", lambda loss: 1.0 - loss),
    "mae": ("neg_mae", lambda loss: -loss),
}


@dataclass(frozen=True)
class SearchOutcome:
    """The leaderboard (best first), its metric, and the contenders in the order the edge budget tries them."""

    metric: str
    leaderboard: list[Candidate]
    contenders: list[Contender]


def classification_metric(y_validation: npt.NDArray[np.int64], n_classes: int) -> str:
    """ROC AUC for two classes when the held-out rows hold both, accuracy otherwise."""
    if n_classes == 2 and len(set(y_validation.tolist())) == 2:
        return "roc_auc"
    return "accuracy"


def settle_decision_threshold(
    X_validation: npt.NDArray[np.float64], y_validation: npt.NDArray[np.int64]
) -> Callable[[bytes, OutputSpec], OutputSpec]:
    """The ``settle_outputs`` hook of a binary classification: the best-F1 threshold of the second class.

    Trained for a rare class, a classifier's most probable class is often never the rare one; the label then
    follows the held-out rows' best-F1 cut of the second class's probability instead (``OutputSpec.threshold``,
    applied by ``run_model`` on the device, in the cloud and in the fidelity gate), when that cut's F1 beats
    the most probable class's by at least ``THRESHOLD_GAIN``: a smaller gain is mostly the noise of a few
    hundred held-out rows, and the cut chosen on them does worse on later rows than the plain rule. The
    probabilities come from the exported model, as the device computes them.
    """

    def settle(onnx: bytes, outputs: OutputSpec) -> OutputSpec:
        import numpy as np

        from edgewise.ml.export import onnx_session, run_model
        from edgewise.ml.training.anomaly import best_f1_threshold

        produced = run_model(onnx_session(onnx), outputs, X_validation)
        probabilities = produced.probabilities
        if probabilities is None or probabilities.shape[1] != 2:
            return outputs
        threshold = best_f1_threshold(probabilities[:, 1], y_validation)
        plain = _f1(np.argmax(probabilities, axis=1) == 1, y_validation)
        if _f1(probabilities[:, 1] > threshold, y_validation) < plain + THRESHOLD_GAIN:
            return outputs
        return dataclasses.replace(outputs, threshold=threshold)

    return settle


def _f1(flags: npt.NDArray[np.bool_], labels: npt.NDArray[np.int64]) -> float:
    found = float((flags & (labels == 1)).sum())
    total = float(flags.sum() + (labels == 1).sum())
    return 2 * found / total if total else 0.0


def search_supervised(
    task: Task,
    X_train: npt.NDArray[np.float64],
    y_train: npt.NDArray[Any],
    X_validation: npt.NDArray[np.float64],
    y_validation: npt.NDArray[Any],
    *,
    metric: str,
    time_budget_s: float,
    seed: int,
    ray_address: str | None,
    progress: ProgressCallback,
) -> SearchOutcome:
    """Run FLAML on ``task`` (classification with labels 0..k-1, or regression) and rank what it tried."""
    from flaml.automl.automl import AutoML

    learners = LEARNERS[task]
    if metric not in _SCORES:
        raise TrainingError(f"metric: {metric!r} is not one of {sorted(_SCORES)}")
    use_ray = ray_address is not None
    if ray_address is not None:
        connect_ray(ray_address)
    flaml_task = _flaml_task(task, y_train)
    progress(phase(f"searching {', '.join(learners)} for {time_budget_s:g} s ({metric} on held-out rows)"))
    with tempfile.TemporaryDirectory(prefix="edgewise-flaml-") as directory:
        log = Path(directory) / "trials.jsonl"
        automl = AutoML()  # type: ignore[no-untyped-call]
        with quiet_convergence(), TrialWatcher(log, metric, progress):
            automl.fit(
                X_train,
                y_train,
                X_val=X_validation,
                y_val=y_validation,
                task="classification" if task is Task.CLASSIFICATION else "regression",
                metric=metric,
                time_budget=time_budget_s,
                estimator_list=list(learners),
                eval_method="holdout",
                split_type="time",
                retrain_full=False,
                n_jobs=1,
                verbose=0,
                seed=seed,
                log_file_name=str(log),
                log_type="all",
                use_ray=use_ray,
            )
        trials = read_trials(log, metric)
    if not trials:
        raise TrainingError(
            f"timeBudgetS: no trial finished within {time_budget_s:g} s; give the search more time"
        )
    board = _board(trials)
    for candidate in board:
        progress(ProgressEvent(kind="candidate", candidate=candidate))
    contenders = [
        Contender(row=row, candidate=board[row], build=_refit(flaml_task, board[row], X_train, y_train))
        for row in export_order(board)
    ]
    return SearchOutcome(metric=board[0].metric, leaderboard=board, contenders=contenders)


def read_trials(log: Path, metric: str) -> list[Candidate]:
    """The trials FLAML logged, as leaderboard candidates, each learner and setting once."""
    trials: list[Candidate] = []
    seen: set[tuple[str, str]] = set()
    if not log.exists():
        return trials
    for line in log.read_text(encoding="utf-8").splitlines():
        candidate = trial_candidate(line, metric)
        if candidate is None:
            continue
        key = (candidate.learner, json.dumps(candidate.params, sort_keys=True))
        if key not in seen:
            seen.add(key)
            trials.append(candidate)
    return trials


def trial_candidate(line: str, metric: str) -> Candidate | None:
    """One line of FLAML's trial log as a candidate; ``None`` for a blank or checkpoint line."""
    name, score_of = _SCORES[metric]
    record = json.loads(line) if line.strip() else {}
    if "learner" not in record:
        return None
    config = {key: value for key, value in record["config"].items() if not key.startswith("FLAML_")}
    loss = float(record["validation_loss"])
    return Candidate(
        learner=record["learner"],
        params=config,
        metric=name,
        score=score_of(loss) if math.isfinite(loss) else float("nan"),
    )


class TrialWatcher:
    """Reads FLAML's trial log while it searches and reports each learner's new best score as it appears.

    FLAML flushes every trial to its log but has no per-trial callback, so a thread reads the file every
    ``WATCH_INTERVAL_S``. Its reports never overlap the training thread's, which is inside FLAML meanwhile;
    on exit the thread is joined and the rest of the log read.
    """

    def __init__(self, log: Path, metric: str, progress: ProgressCallback) -> None:
        self._log = log
        self._metric = metric
        self._progress = progress
        self._offset = 0
        self._best: dict[str, float] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="edgewise-trial-watcher", daemon=True)

    def __enter__(self) -> TrialWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join()
        self._read_new()

    def _watch(self) -> None:
        while not self._stopped.wait(WATCH_INTERVAL_S):
            self._read_new()

    def _read_new(self) -> None:
        try:
            with self._log.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return
        complete = data[: data.rfind(b"\n") + 1]  # a line FLAML is still writing waits for the next read
        self._offset += len(complete)
        for line in complete.decode("utf-8").splitlines():
            candidate = trial_candidate(line, self._metric)
            if candidate is None or not math.isfinite(candidate.score):
                continue
            if candidate.score > self._best.get(candidate.learner, -math.inf):
                self._best[candidate.learner] = candidate.score
                best = dataclasses.replace(candidate, note=f"new best for {candidate.learner}")
                self._progress(ProgressEvent(kind="candidate", candidate=best))


def export_order(board: list[Candidate]) -> list[int]:
    """Rows in the order the edge budget tries them: each learner's best first, then the rest by rank.

    A learner's best goes before a slightly better second setting of another learner because the budget
    most often rejects a whole family (a forest too large), and the next best family is the useful fallback.
    """
    firsts: list[int] = []
    learners: set[str] = set()
    for row, candidate in enumerate(board):
        if candidate.learner not in learners and math.isfinite(candidate.score):
            learners.add(candidate.learner)
            firsts.append(row)
    rest = [row for row, c in enumerate(board) if row not in firsts and math.isfinite(c.score)]
    return firsts + rest


def connect_ray(address: str) -> None:
    """Join the Ray cluster at ``address`` so that FLAML runs trials on it."""
    try:
        import ray
    except ImportError as error:
        raise TrainingError(
            f"rayAddress: training on a Ray cluster needs the ray package, which is not installed "
            f"(pip install ray): {error}"
        ) from error
    try:
        ray.init(address=address, ignore_reinit_error=True)
    except Exception as error:  # ray raises ConnectionError, RuntimeError or its own classes
        raise TrainingError(f"rayAddress: cannot join the Ray cluster at {address!r}: {error}") from error


@contextlib.contextmanager
def quiet_convergence() -> Iterator[None]:
    """Silence scikit-learn's ConvergenceWarning: a time-boxed trial that stops early just scores lower."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _board(trials: list[Candidate]) -> list[Candidate]:
    ordered = ranked(trials)
    keep = set(range(min(LEADERBOARD_ROWS, len(ordered))))
    learners: set[str] = set()
    for row, candidate in enumerate(ordered):
        if candidate.learner not in learners:
            learners.add(candidate.learner)
            keep.add(row)
    return [candidate for row, candidate in enumerate(ordered) if row in keep]


def _flaml_task(task: Task, y_train: npt.NDArray[Any]) -> str:
    if task is Task.CLASSIFICATION:
        return "binary" if len(set(y_train.tolist())) <= 2 else "multiclass"
    return "regression"


def _refit(
    flaml_task: str, candidate: Candidate, X: npt.NDArray[np.float64], y: npt.NDArray[Any]
) -> Callable[[], object]:
    def build() -> object:
        from flaml.automl.task.factory import task_factory

        learner_class = task_factory(flaml_task).estimator_class_from_str(candidate.learner)
        estimator = learner_class(task=flaml_task, **{**candidate.params, "n_jobs": 1})
        with quiet_convergence():
            estimator.fit(X, y)
        return estimator.estimator

    return build
