"""What a training run is asked to do: the task, the columns, the time it may take and the edge budget.

``TrainingRequest`` travels as camelCase JSON (the cloud API, the training job's request file); every error
names the JSON field and the problem.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from edgewise.ml.errors import TrainingError

#: The longest search a request may ask for (a day); longer runs belong to a scheduled pipeline.
MAX_TIME_BUDGET_S = 86_400.0
#: The most steps ahead, and the most lags, a forecast may use.
MAX_HORIZON = 10_000
MAX_LAGS = 1_000
#: How many past values of the series a forecast sees when the request does not say.
DEFAULT_LAGS = 12


class Task(StrEnum):
    """What the model learns to say about a row."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    ANOMALY = "anomaly"
    FORECAST = "forecast"


#: The tasks that learn from a label column, so need one named.
LABELLED_TASKS = frozenset({Task.CLASSIFICATION, Task.REGRESSION, Task.FORECAST})


@dataclass(frozen=True)
class EdgeBudget:
    """Limits the exported model must meet on the device: one-thread p50 latency per row and ONNX file size."""

    max_latency_ms: float | None = None
    max_size_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.max_latency_ms is not None and not (
            math.isfinite(self.max_latency_ms) and self.max_latency_ms > 0
        ):
            raise TrainingError(
                f"budget.maxLatencyMs: must be a positive number, not {self.max_latency_ms!r}"
            )
        if self.max_size_bytes is not None and self.max_size_bytes < 1:
            raise TrainingError(
                f"budget.maxSizeBytes: must be a positive integer, not {self.max_size_bytes!r}"
            )

    def to_json(self) -> dict[str, object]:
        return {"maxLatencyMs": self.max_latency_ms, "maxSizeBytes": self.max_size_bytes}

    @classmethod
    def from_json(cls, data: object, *, field: str = "budget") -> EdgeBudget:
        obj = _object(data, field)
        _no_unknown(obj, ("maxLatencyMs", "maxSizeBytes"), field)
        latency = _optional_number(obj, "maxLatencyMs", field)
        size = _optional_integer(obj, "maxSizeBytes", field)
        return cls(max_latency_ms=latency, max_size_bytes=size)


@dataclass(frozen=True)
class TrainingRequest:
    """One training run. ``features=()`` means every numeric column but ``thing``, ``timestamp`` and the label.

    ``lags`` is how many past values of the label a forecast reads (ignored by the other tasks).
    """

    task: Task
    label: str | None = None
    features: tuple[str, ...] = ()
    time_budget_s: float = 60.0
    budget: EdgeBudget = field(default_factory=EdgeBudget)
    horizon: int = 1
    seed: int = 0
    ray_address: str | None = None
    lags: int = DEFAULT_LAGS

    def __post_init__(self) -> None:
        if not isinstance(self.task, Task):
            raise TrainingError(f"task: must be one of {', '.join(Task)}, not {self.task!r}")
        if self.label is not None and not self.label:
            raise TrainingError("label: must not be empty")
        if self.task in LABELLED_TASKS and self.label is None:
            raise TrainingError(f"label: the {self.task} task needs the name of its label column")
        if len(set(self.features)) != len(self.features):
            raise TrainingError(f"features: names a column twice ({list(self.features)})")
        if any(not name for name in self.features):
            raise TrainingError("features: a column name must not be empty")
        if self.label is not None and self.label in self.features:
            raise TrainingError(f"features: the label column {self.label!r} cannot also be a feature")
        if not (math.isfinite(self.time_budget_s) and 0 < self.time_budget_s <= MAX_TIME_BUDGET_S):
            raise TrainingError(
                f"timeBudgetS: must be a number of seconds above 0 and at most {MAX_TIME_BUDGET_S:g}, "
                f"not {self.time_budget_s!r}"
            )
        if not 1 <= self.horizon <= MAX_HORIZON:
            raise TrainingError(f"horizon: must be between 1 and {MAX_HORIZON}, not {self.horizon}")
        if not 1 <= self.lags <= MAX_LAGS:
            raise TrainingError(f"lags: must be between 1 and {MAX_LAGS}, not {self.lags}")
        if self.seed < 0:
            raise TrainingError(f"seed: must be a non-negative integer, not {self.seed}")
        if self.ray_address is not None and not self.ray_address:
            raise TrainingError("rayAddress: must not be empty (leave it out to train in this process)")

    def to_json(self) -> dict[str, object]:
        return {
            "task": self.task.value,
            "label": self.label,
            "features": list(self.features),
            "timeBudgetS": self.time_budget_s,
            "budget": self.budget.to_json(),
            "horizon": self.horizon,
            "lags": self.lags,
            "seed": self.seed,
            "rayAddress": self.ray_address,
        }

    @classmethod
    def from_json(cls, data: object) -> TrainingRequest:
        """Parse camelCase JSON; ``TrainingError`` names the first field that is missing or wrong."""
        obj = _object(data, "request")
        _no_unknown(
            obj,
            ("task", "label", "features", "timeBudgetS", "budget", "horizon", "lags", "seed", "rayAddress"),
            "request",
        )
        task_text = obj.get("task")
        if task_text is None:
            raise TrainingError(f"task: is required (one of {', '.join(Task)})")
        if not isinstance(task_text, str) or task_text not in set(Task):
            raise TrainingError(f"task: must be one of {', '.join(Task)}, not {task_text!r}")
        features = obj.get("features", [])
        if not isinstance(features, list) or not all(isinstance(name, str) for name in features):
            raise TrainingError(f"features: must be a list of column names, not {features!r}")
        time_budget = _optional_number(obj, "timeBudgetS", "")
        horizon = _optional_integer(obj, "horizon", "")
        lags = _optional_integer(obj, "lags", "")
        seed = _optional_integer(obj, "seed", "")
        budget = obj.get("budget")
        return cls(
            task=Task(task_text),
            label=_optional_text(obj, "label"),
            features=tuple(features),
            time_budget_s=60.0 if time_budget is None else time_budget,
            budget=EdgeBudget() if budget is None else EdgeBudget.from_json(budget),
            horizon=1 if horizon is None else horizon,
            lags=DEFAULT_LAGS if lags is None else lags,
            seed=0 if seed is None else seed,
            ray_address=_optional_text(obj, "rayAddress"),
        )


def _object(data: object, field: str) -> Mapping[str, object]:
    if not isinstance(data, Mapping) or not all(isinstance(key, str) for key in data):
        raise TrainingError(f"{field}: must be a JSON object, not {type(data).__name__}")
    return data


def _no_unknown(obj: Mapping[str, object], known: tuple[str, ...], field: str) -> None:
    unknown = sorted(set(obj) - set(known))
    if unknown:
        raise TrainingError(f"{field}: unknown field {unknown[0]!r} (known: {', '.join(known)})")


def _path(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _optional_text(obj: Mapping[str, object], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise TrainingError(f"{key}: must be a string or null, not {value!r}")
    return value


def _optional_number(obj: Mapping[str, object], key: str, field: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TrainingError(f"{_path(field, key)}: must be a number, not {value!r}")
    return float(value)


def _optional_integer(obj: Mapping[str, object], key: str, field: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TrainingError(f"{_path(field, key)}: must be an integer, not {value!r}")
    return value
