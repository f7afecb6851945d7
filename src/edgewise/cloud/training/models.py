"""The ``training_jobs`` table: what each training job was asked, where it stands, and what it produced."""

from __future__ import annotations

import datetime
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.db import Base, UTCDateTime, utcnow


class TrainingStatus(enum.StrEnum):
    """Where a training job stands; the last three are final."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_active(self) -> bool:
        """Whether the job is still to run or running."""
        return self in (TrainingStatus.QUEUED, TrainingStatus.RUNNING)


class TrainingJob(Base):
    """One AutoML run on a dataset, producing a version of the model ``model_name`` when it succeeds.

    ``request`` is :meth:`edgewise.ml.training.TrainingRequest.to_json` (camelCase), ``leaderboard`` the
    candidates the job reported (:meth:`edgewise.ml.training.Candidate.to_json`), best first.
    """

    __tablename__ = "training_jobs"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    model_name: Mapped[str] = mapped_column(sa.String(64), index=True)
    dataset_name: Mapped[str] = mapped_column(sa.String(64), index=True)
    dataset_sha256: Mapped[str] = mapped_column(sa.String(64))
    request: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    status: Mapped[TrainingStatus] = mapped_column(
        sa.Enum(
            TrainingStatus,
            name="training_job_status",
            native_enum=False,
            length=16,
            values_callable=lambda members: [member.value for member in members],
        ),
        index=True,
    )
    phase: Mapped[str] = mapped_column(sa.Text, default="")
    leaderboard: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    error: Mapped[str | None] = mapped_column(sa.Text, default=None)
    model_version: Mapped[str | None] = mapped_column(sa.String(32), default=None)
    #: The alias the worker points at the version the job registers (``challenger`` for a drift retraining).
    propose_alias: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, default=None)
    created_by: Mapped[str] = mapped_column(sa.String(128))
