"""Jobs tables: jobs (a document for a set of targets, with rollout, abort, timeout and retry configuration) and
their executions (one row per run of a job on a thing; a retry is a new row with the next execution number)."""

from __future__ import annotations

import datetime
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.db import Base, UTCDateTime, utcnow
from edgewise.protocol.jobs import ExecutionStatus as ExecutionStatus


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    #: Executions are being rolled out or run.
    IN_PROGRESS = "IN_PROGRESS"
    #: Cancelled by an operator or aborted by its abort criteria; no new executions.
    CANCELED = "CANCELED"
    #: Being deleted; gone at the engine's next pass.
    DELETION_IN_PROGRESS = "DELETION_IN_PROGRESS"
    #: Every execution of a snapshot job reached a terminal status.
    COMPLETED = "COMPLETED"

    @property
    def is_active(self) -> bool:
        """Whether the job still rolls out, retries and aborts."""
        return self is JobStatus.IN_PROGRESS


class TargetSelection(enum.StrEnum):
    """Whether a job's targets are resolved once (SNAPSHOT) or follow group membership (CONTINUOUS)."""

    SNAPSHOT = "SNAPSHOT"
    CONTINUOUS = "CONTINUOUS"


def _enum(cls: type[enum.StrEnum], name: str) -> sa.Enum:
    return sa.Enum(
        cls,
        name=name,
        native_enum=False,
        length=32,
        values_callable=lambda members: [m.value for m in members],
    )


class Job(Base):
    """A job: its document, targets and configuration, and the state of its rollout."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    namespace_id: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    document: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    #: ``[{"kind": "thing" | "group", "name": ...}]`` as given (names or ARNs resolved at creation).
    targets: Mapped[list[dict[str, str]]] = mapped_column(sa.JSON)
    target_selection: Mapped[TargetSelection] = mapped_column(_enum(TargetSelection, "job_target_selection"))
    #: The AWS-shaped configurations as given (camelCase JSON), ``None`` when left out.
    rollout_config: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, default=None)
    abort_config: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, default=None)
    in_progress_timeout_minutes: Mapped[int | None] = mapped_column(default=None)
    retry_config: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, default=None)
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, "job_status"), index=True)
    force_canceled: Mapped[bool] = mapped_column(default=False)
    reason_code: Mapped[str | None] = mapped_column(sa.String(128), default=None)
    comment: Mapped[str | None] = mapped_column(sa.String(2028), default=None)
    #: The things the rollout notifies at its rate, in order (the targets' things when the job was created).
    planned_things: Mapped[list[str]] = mapped_column(sa.JSON, default=list, deferred=True)
    #: How many of ``planned_things`` the rollout has gone through.
    rollout_position: Mapped[int] = mapped_column(default=0)
    #: The current one-minute rollout window and how many executions it created.
    window_started_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    window_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, default=None)


class JobExecution(Base):
    """One run of a job on a thing."""

    __tablename__ = "job_executions"
    __table_args__ = (
        sa.UniqueConstraint("job_pk", "thing_name", "execution_number", name="uq_job_executions_run"),
        sa.Index("ix_job_executions_thing_status", "thing_name", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_pk: Mapped[int] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    # A name, not a key: the history of a job outlives a deleted thing, as in AWS IoT.
    thing_name: Mapped[str] = mapped_column(sa.String(128))
    execution_number: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[ExecutionStatus] = mapped_column(_enum(ExecutionStatus, "job_execution_status"))
    status_details: Mapped[dict[str, str]] = mapped_column(sa.JSON, default=dict)
    version_number: Mapped[int] = mapped_column(default=1)
    #: 0 for the first run; n for the n-th retry.
    retry_attempt: Mapped[int] = mapped_column(default=0)
    queued_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, default=None)
    last_updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    #: When the device's step timer runs out (set with ``stepTimeoutInMinutes``).
    step_timeout_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, default=None)
    #: When the job's in-progress timer runs out (set when the execution goes IN_PROGRESS).
    in_progress_timeout_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, default=None)
