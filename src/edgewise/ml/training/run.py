"""``train``: one training run from a dataset table and a request to an exported, budget-checked model.

The run prepares the columns (numeric features, rows with a missing value dropped), splits the rows in time
order, searches (FLAML for classification, regression and forecast; the detector search for anomaly), then
hands the ranked candidates to the edge budget, which exports them in turn until one passes the fidelity
gate and fits the device. Models learn from the training rows only; the held-out rows give the score, the
fidelity check, the input example and the drift reference.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from edgewise.ml.errors import TrainingError
from edgewise.ml.training.budget import EdgeChoice, SettleOutputs, choose_for_edge
from edgewise.ml.training.leaderboard import Candidate, ProgressCallback, ProgressEvent, phase
from edgewise.ml.training.splits import time_order, time_split
from edgewise.ml.training.tasks import Task, TrainingRequest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

    from edgewise.ml.export import FidelityReport, LatencyReport
    from edgewise.protocol.model_package import OutputSpec

#: Columns that identify a row rather than describe it, never features.
RESERVED_COLUMNS: Final = ("thing", "timestamp")
#: The column an anomaly run reads labels from when the request names none.
ANOMALY_LABEL = "label"
#: The most distinct classes a classification takes; more is almost always a regression target.
MAX_CLASSES = 100
#: Held-out rows kept as the input example; values per column kept as the drift reference (from every row).
EXAMPLE_ROWS = 5
REFERENCE_VALUES = 2_000
#: The reference key of the model's own output (class probability, prediction or anomaly score).
SCORE_REFERENCE = "__score__"


@dataclass
class TrainingResult:
    """The chosen model, its export and reports, the leaderboard and what the device and drift checks need.

    ``classes`` are the original class values; the model's labels are their indices (0..k-1).
    ``native_model`` is the fitted estimator or pipeline, kept in the cloud only. ``params`` are the
    winner's settings.
    """

    task: Task
    learner: str
    metric: str
    score: float
    onnx: bytes
    features: list[str]
    label: str | None
    classes: list[object] | None
    outputs: OutputSpec
    fidelity: FidelityReport
    latency: LatencyReport
    size_bytes: int
    leaderboard: list[Candidate]
    input_example: list[list[float]]
    reference: dict[str, list[float]]
    native_model: object
    params: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """Everything but ``onnx`` and ``native_model``, camelCase (the training job's ``result.json``)."""
        return {
            "task": self.task.value,
            "learner": self.learner,
            "params": dict(self.params),
            "metric": self.metric,
            "score": self.score if math.isfinite(self.score) else None,
            "features": list(self.features),
            "label": self.label,
            "classes": None if self.classes is None else list(self.classes),
            "outputs": self.outputs.to_json(),
            "fidelity": self.fidelity.to_json(),
            "latency": self.latency.to_json(),
            "sizeBytes": self.size_bytes,
            "leaderboard": [candidate.to_json() for candidate in self.leaderboard],
            "inputExample": [list(row) for row in self.input_example],
            "reference": {name: list(values) for name, values in self.reference.items()},
        }


def _ignore(event: ProgressEvent) -> None:
    del event


def train(table: pa.Table, request: TrainingRequest, progress: ProgressCallback = _ignore) -> TrainingResult:
    """Train, export and check a model for ``request`` on ``table``; ``TrainingError`` says why not."""
    started = time.monotonic()
    progress(phase(f"preparing {table.num_rows} rows for {request.task.value}"))
    if request.ray_address is not None and request.task is Task.ANOMALY:
        raise TrainingError("rayAddress: the anomaly search runs in this process; leave rayAddress out")
    if request.task is Task.ANOMALY:
        result = _train_anomaly(table, request, progress)
    elif request.task is Task.FORECAST:
        result = _train_forecast(table, request, progress)
    else:
        result = _train_supervised(table, request, progress)
    progress(
        phase(
            f"chose {result.learner} ({result.metric} {result.score:.4g}, {result.size_bytes} bytes, "
            f"p50 {result.latency.p50_ms:.4g} ms) in {time.monotonic() - started:.1f} s"
        )
    )
    return result


def _train_supervised(
    table: pa.Table, request: TrainingRequest, progress: ProgressCallback
) -> TrainingResult:
    import numpy as np

    from edgewise.ml.training.supervised import (
        classification_metric,
        search_supervised,
        settle_decision_threshold,
    )

    assert request.label is not None  # TrainingRequest requires it for this task
    label = _require_column(table, request.label, "label")
    features = _feature_columns(table, request, exclude={request.label})
    X = _matrix(table, features)
    if request.task is Task.REGRESSION:
        _require_numeric(table, label, "label")
        y_values = _floats(table, label)
        keep = ~np.isnan(X).any(axis=1) & ~np.isnan(y_values)
    else:
        labels = table.column(label).to_pylist()
        keep = ~np.isnan(X).any(axis=1) & np.array([_present(value) for value in labels], dtype=bool)
    _report_dropped(progress, keep)
    X = X[keep]
    classes: list[object] | None = None
    y_all: npt.NDArray[Any] = y_values[keep] if request.task is Task.REGRESSION else np.empty(0)
    if request.task is Task.CLASSIFICATION:
        classes, y_all = _encode_classes([value for value, k in zip(labels, keep, strict=True) if k], label)
    # Classification holds out rows of every class, so that the score can tell who finds a rare one.
    split = time_split(_timestamps(table, keep), len(X), labels=y_all if classes is not None else None)
    X_train, X_validation = X[split.train], X[split.validation]
    y_train: npt.NDArray[Any] = y_all[split.train]
    y_validation: npt.NDArray[Any] = y_all[split.validation]
    settle: SettleOutputs | None = None
    if classes is not None:
        _check_classes_learned(classes, y_train, y_validation, label)
        metric = classification_metric(y_validation, len(classes))
        if metric == "roc_auc" and y_train.mean() < 0.5:
            # The second class (1, True) is the minority, so most likely the one worth finding.
            settle = settle_decision_threshold(X_validation, y_validation)
    else:
        metric = "r2"
    search = search_supervised(
        request.task,
        X_train,
        y_train,
        X_validation,
        y_validation,
        metric=metric,
        time_budget_s=request.time_budget_s,
        seed=request.seed,
        ray_address=request.ray_address,
        progress=progress,
    )
    choice = choose_for_edge(
        search.contenders,
        task=request.task,
        n_features=len(features),
        X_check=X_validation,
        budget=request.budget,
        progress=progress,
        settle_outputs=settle,
    )
    if classes is not None:
        choice = dataclasses.replace(
            choice, outputs=dataclasses.replace(choice.outputs, classes=tuple(classes))
        )
    return _result(request, choice, search.leaderboard, features, label, classes, X_validation, X)


def _train_forecast(table: pa.Table, request: TrainingRequest, progress: ProgressCallback) -> TrainingResult:
    import numpy as np

    from edgewise.ml.training.forecast import lag_samples
    from edgewise.ml.training.supervised import search_supervised

    assert request.label is not None  # TrainingRequest requires it for this task
    label = _require_column(table, request.label, "label")
    _require_numeric(table, label, "label")
    extra_names = list(request.features)
    for name in extra_names:
        _require_numeric(table, _require_column(table, name, "features"), "features")
    everything = np.ones(table.num_rows, dtype=bool)
    times = _timestamps(table, everything)
    order = time_order(times, table.num_rows)
    groups = None
    if "thing" in table.column_names:
        groups = np.array([str(value) for value in table.column("thing").to_pylist()], dtype=object)[order]
    samples = lag_samples(
        _floats(table, label)[order],
        _matrix(table, extra_names)[order],
        label=label,
        extra_names=extra_names,
        lags=request.lags,
        horizon=request.horizon,
        groups=groups,
        times=None if times is None else times[order],
    )
    progress(phase(f"built {len(samples.y)} windows of {request.lags} lags, {request.horizon} steps ahead"))
    split = time_split(samples.times, len(samples.y))
    X_train, X_validation = samples.X[split.train], samples.X[split.validation]
    search = search_supervised(
        Task.REGRESSION,
        X_train,
        samples.y[split.train],
        X_validation,
        samples.y[split.validation],
        metric="mae",
        time_budget_s=request.time_budget_s,
        seed=request.seed,
        ray_address=request.ray_address,
        progress=progress,
    )
    choice = choose_for_edge(
        search.contenders,
        task=Task.FORECAST,
        n_features=len(samples.feature_names),
        X_check=X_validation,
        budget=request.budget,
        progress=progress,
    )
    return _result(
        request, choice, search.leaderboard, samples.feature_names, label, None, X_validation, samples.X
    )


def _train_anomaly(table: pa.Table, request: TrainingRequest, progress: ProgressCallback) -> TrainingResult:
    import numpy as np

    from edgewise.ml.training.anomaly import search_anomaly, settle_threshold

    label: str | None = request.label
    if label is not None:
        _require_column(table, label, "label")
    elif ANOMALY_LABEL in table.column_names and ANOMALY_LABEL not in request.features:
        label = ANOMALY_LABEL
    if label is not None:
        _require_numeric(table, label, "label")
    features = _feature_columns(table, request, exclude=set() if label is None else {label})
    X = _matrix(table, features)
    keep = np.asarray(~np.isnan(X).any(axis=1), dtype=np.bool_)
    _report_dropped(progress, keep)
    X = X[keep]
    # A missing label counts as normal: anomalies are what someone marked.
    y = None if label is None else (np.nan_to_num(_floats(table, label)[keep]) != 0).astype(np.int64)
    split = time_split(_timestamps(table, keep), len(X))
    X_train, X_validation = X[split.train], X[split.validation]
    y_train = None if y is None else y[split.train]
    y_validation = None if y is None else y[split.validation]
    search = search_anomaly(
        X_train,
        y_train,
        X_validation,
        y_validation,
        time_budget_s=request.time_budget_s,
        seed=request.seed,
        progress=progress,
    )
    choice = choose_for_edge(
        search.contenders,
        task=Task.ANOMALY,
        n_features=len(features),
        X_check=X_validation,
        budget=request.budget,
        progress=progress,
        settle_outputs=settle_threshold(search, X_train, X_validation, y_validation),
    )
    return _result(request, choice, search.leaderboard, features, label, None, X_validation, X)


def _result(
    request: TrainingRequest,
    choice: EdgeChoice,
    leaderboard: list[Candidate],
    features: list[str],
    label: str | None,
    classes: list[object] | None,
    X_validation: npt.NDArray[np.float64],
    X_all: npt.NDArray[np.float64],
) -> TrainingResult:
    import numpy as np

    from edgewise.ml.export import onnx_session, run_model

    board = [choice.measured.get(row, candidate) for row, candidate in enumerate(leaderboard)]
    # The reference spans the whole dataset, evenly in time: the held-out tail alone would cover one part of a
    # daily (or any) cycle, and every later stretch of normal data would then look like drift.
    spread = np.unique(np.linspace(0, len(X_all) - 1, min(len(X_all), REFERENCE_VALUES)).astype(np.int64))
    reference_rows = X_all[spread]
    outputs = run_model(onnx_session(choice.onnx), choice.outputs, reference_rows)
    own = outputs.scores if outputs.scores is not None else outputs.labels
    reference = {name: reference_rows[:, index].tolist() for index, name in enumerate(features)}
    if own is not None:
        reference[SCORE_REFERENCE] = np.asarray(own, dtype=np.float64).tolist()
    return TrainingResult(
        task=request.task,
        learner=choice.candidate.learner,
        metric=choice.candidate.metric,
        score=choice.candidate.score,
        onnx=choice.onnx,
        features=list(features),
        label=label,
        classes=classes,
        outputs=choice.outputs,
        fidelity=choice.fidelity,
        latency=choice.latency,
        size_bytes=len(choice.onnx),
        leaderboard=board,
        input_example=X_validation[:EXAMPLE_ROWS].tolist(),
        reference=reference,
        native_model=choice.model,
        params=dict(choice.candidate.params),
    )


def _require_column(table: pa.Table, name: str, field_name: str) -> str:
    if name not in table.column_names:
        raise TrainingError(
            f"{field_name}: column {name!r} is not in the dataset (columns: {', '.join(table.column_names)})"
        )
    return name


def _is_numeric(data_type: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_boolean(data_type)
    )


def _require_numeric(table: pa.Table, name: str, field_name: str) -> None:
    data_type = table.schema.field(name).type
    if not _is_numeric(data_type):
        raise TrainingError(f"{field_name}: column {name!r} holds {data_type}, not numbers")


def _feature_columns(table: pa.Table, request: TrainingRequest, *, exclude: set[str]) -> list[str]:
    if request.features:
        for name in request.features:
            _require_numeric(table, _require_column(table, name, "features"), "features")
        return list(request.features)
    skipped = exclude | set(RESERVED_COLUMNS)
    names = [f.name for f in table.schema if f.name not in skipped and _is_numeric(f.type)]
    if not names:
        raise TrainingError(
            f"features: the dataset has no numeric column besides {', '.join(sorted(skipped))} "
            f"(columns: {', '.join(table.column_names)})"
        )
    return names


def _floats(table: pa.Table, name: str) -> npt.NDArray[np.float64]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pc.cast(table.column(name), pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64)


def _matrix(table: pa.Table, names: list[str]) -> npt.NDArray[np.float64]:
    import numpy as np

    if not names:
        return np.empty((table.num_rows, 0), dtype=np.float64)
    return np.column_stack([_floats(table, name) for name in names])


def _timestamps(table: pa.Table, keep: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64] | None:
    """Row times as numbers (a missing time sorts last), or ``None`` without a ``timestamp`` column."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if "timestamp" not in table.column_names:
        return None
    column = table.column("timestamp")
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        column = pc.cast(column, pa.timestamp("ms")) if pa.types.is_date(column.type) else column
        column = pc.cast(column, pa.int64())
    elif not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise TrainingError(f"timestamp: column holds {column.type}, not times")
    values = np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    return values[keep]


def _report_dropped(progress: ProgressCallback, keep: npt.NDArray[np.bool_]) -> None:
    dropped = int((~keep).sum())
    if dropped:
        progress(phase(f"dropped {dropped} of {len(keep)} rows with a missing value"))


def _encode_classes(values: list[Any], label: str) -> tuple[list[object], npt.NDArray[np.int64]]:
    import numpy as np

    plain = [_plain(value) for value in values]
    classes = sorted(set(plain), key=lambda value: (type(value).__name__, value))
    if len(classes) < 2:
        raise TrainingError(
            f"label: column {label!r} has one class ({classes[0]!r}); classification needs two"
        )
    if len(classes) > MAX_CLASSES:
        raise TrainingError(
            f"label: column {label!r} has {len(classes)} classes, more than {MAX_CLASSES}; is it a regression target?"
        )
    index = {value: position for position, value in enumerate(classes)}
    return list(classes), np.array([index[value] for value in plain], dtype=np.int64)


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    # Labels read from JSON payloads are floats; 1.0 and 1 are one class, shown as 1.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check_classes_learned(
    classes: list[object], y_train: npt.NDArray[np.int64], y_validation: npt.NDArray[np.int64], label: str
) -> None:
    unseen = sorted(set(y_validation.tolist()) - set(y_train.tolist()))
    if unseen:
        raise TrainingError(
            f"label: class {classes[unseen[0]]!r} of column {label!r} appears only in the latest rows "
            "(the validation part); the training rows must hold every class"
        )
