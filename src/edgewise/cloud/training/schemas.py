"""API shapes of training jobs (camelCase on the wire).

``POST /training-jobs`` asks for a model ``modelName`` trained on the dataset ``dataset``: the ``task``, the
``label`` and ``features`` columns, a ``timeBudgetSeconds`` for the search, the edge budget (``maxLatencyMs``,
``maxSizeBytes``) the exported model must meet, a forecast's ``horizon`` (and ``lags``), the ``seed``, and the
Ray cluster to search on (``rayAddress``; the cloud's ``training_ray_address`` when left out).
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from edgewise.cloud.training.models import TrainingStatus
from edgewise.ml.errors import MlNameError
from edgewise.ml.names import ML_NAME_PATTERN, check_ml_name

MAX_FEATURES: Final = 10_000
COLUMN_MAX_LENGTH: Final = 256

Task = Literal["classification", "regression", "anomaly", "forecast"]
ColumnName = Annotated[str, Field(min_length=1, max_length=COLUMN_MAX_LENGTH)]


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class TrainingJobCreate(_Shape):
    """``POST /training-jobs``: what to train, on what, within which budgets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str = Field(description="The model the job adds a version to (letters, digits, _ and -)")
    dataset: Annotated[str, Field(min_length=1, max_length=64, pattern=ML_NAME_PATTERN)]
    task: Task
    label: ColumnName | None = Field(default=None, description="The label column (not for anomaly)")
    features: Annotated[list[ColumnName], Field(max_length=MAX_FEATURES)] = Field(
        default=[],
        description="Feature columns; empty means every numeric column but thing, timestamp, label",
    )
    time_budget_seconds: float = Field(default=60.0, ge=1, le=86_400)
    max_latency_ms: float | None = Field(default=None, gt=0, le=3_600_000)
    max_size_bytes: int | None = Field(default=None, ge=1, le=2**40)
    horizon: int = Field(default=1, ge=1, le=10_000, description="Forecast: the steps ahead")
    lags: int | None = Field(default=None, ge=1, le=1_000, description="Forecast: the past values it reads")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    ray_address: str | None = Field(default=None, min_length=1, max_length=1024)

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str) -> str:
        try:
            return check_ml_name("modelName", value)
        except MlNameError as exc:
            raise ValueError(exc.message) from None


class TrainingJobItem(_Shape):
    """A training job in a listing."""

    id: str
    model_name: str
    dataset: str
    task: str
    status: TrainingStatus
    phase: str
    model_version: str | None
    error: str | None
    created_at: datetime.datetime
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    created_by: str


class TrainingJobPublic(TrainingJobItem):
    """A training job: its request, where it stands and its leaderboard (best first)."""

    dataset_sha256: str
    time_budget_seconds: float
    request: dict[str, Any] = Field(description="The training request as the job reads it")
    leaderboard: list[dict[str, Any]] = Field(
        description="The candidates tried: learner, params, metric, score, sizeBytes, latencyMs, fitsBudget"
    )


class TrainingJobsPublic(_Shape):
    """A page of training jobs, newest first, and how many match."""

    data: list[TrainingJobItem]
    count: int
