"""Training jobs in the store: queue, list, read and cancel them, and the state changes the worker makes.

A job is QUEUED when created, RUNNING once the worker has claimed it, then SUCCEEDED, FAILED or CANCELLED. Every
change the worker makes to a running job is conditional on the job still being RUNNING, so a cancel (which the
API writes at once) always wins over the worker's late updates. Functions block; the API runs them in its thread
pool and the worker through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.datasets.models import Dataset
from edgewise.cloud.datasets.service import ml_libraries
from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import CloudConflictError, InvalidRequestError, NotFoundError
from edgewise.cloud.training.models import TrainingJob, TrainingStatus
from edgewise.cloud.training.schemas import TrainingJobCreate, TrainingJobItem, TrainingJobPublic

KIND: Final = "Training job"
#: What a job left RUNNING by a cloud that stopped (or crashed) is failed with.
INTERRUPTED: Final = "the cloud stopped while it ran"
ERROR_MAX_LENGTH: Final = 8192
PHASE_MAX_LENGTH: Final = 1024


def training_request(job: TrainingJobCreate, *, default_ray_address: str | None) -> dict[str, Any]:
    """The request file the job subprocess reads (:meth:`TrainingRequest.to_json`), checked by the ML library.

    Raises:
        InvalidRequestError: the ML library refuses the request (naming the field).
        MlUnavailableError: the ML libraries are not installed.
    """
    with ml_libraries():
        from edgewise.ml.errors import TrainingError
        from edgewise.ml.training.tasks import EdgeBudget, Task, TrainingRequest

        try:
            request = TrainingRequest(
                task=Task(job.task),
                label=job.label,
                features=tuple(job.features),
                time_budget_s=job.time_budget_seconds,
                budget=EdgeBudget(max_latency_ms=job.max_latency_ms, max_size_bytes=job.max_size_bytes),
                horizon=job.horizon,
                seed=job.seed,
                ray_address=job.ray_address or default_ray_address,
                **({} if job.lags is None else {"lags": job.lags}),
            )
        except TrainingError as exc:
            field, separator, problem = str(exc).partition(": ")
            raise (
                InvalidRequestError(field, problem) if separator else InvalidRequestError("request", str(exc))
            ) from None
        return request.to_json()


def create_job(
    session: Session, job: TrainingJobCreate, *, created_by: str, default_ray_address: str | None
) -> TrainingJob:
    """Queue a training job on an existing dataset.

    Raises:
        InvalidRequestError: no dataset has that name, or the request is refused (naming the field).
        MlUnavailableError: the ML libraries are not installed.
    """
    dataset = session.scalar(sa.select(Dataset).where(Dataset.name == job.dataset))
    if dataset is None:
        raise InvalidRequestError("dataset", f"there is no dataset {job.dataset!r}")
    row = TrainingJob(
        id=str(uuid.uuid4()),
        model_name=job.model_name,
        dataset_name=dataset.name,
        dataset_sha256=dataset.sha256,
        request=training_request(job, default_ray_address=default_ray_address),
        status=TrainingStatus.QUEUED,
        phase="queued",
        leaderboard=[],
        created_by=created_by,
    )
    session.add(row)
    session.commit()
    return row


def get_job(session: Session, job_id: str) -> TrainingJob:
    """The job ``job_id``.

    Raises:
        NotFoundError: there is none.
    """
    row = session.get(TrainingJob, job_id)
    if row is None:
        raise NotFoundError(KIND, job_id)
    return row


def list_jobs(
    session: Session,
    *,
    model: str | None = None,
    status: TrainingStatus | None = None,
    limit: int,
    offset: int,
) -> tuple[list[TrainingJob], int]:
    """A page of jobs, newest first, of ``model`` and in ``status`` when given, and how many match."""
    conditions: list[sa.ColumnElement[bool]] = []
    if model is not None:
        conditions.append(TrainingJob.model_name == model)
    if status is not None:
        conditions.append(TrainingJob.status == status)
    count = session.scalar(sa.select(sa.func.count()).select_from(TrainingJob).where(*conditions)) or 0
    rows = session.scalars(
        sa.select(TrainingJob)
        .where(*conditions)
        .order_by(TrainingJob.created_at.desc(), TrainingJob.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), count


def cancel_job(session: Session, job_id: str) -> TrainingJob:
    """Cancel a queued or running job; the worker stops a running job's process once it sees the change.

    Raises:
        NotFoundError: there is no such job.
        CloudConflictError: the job has ended already.
    """
    row = get_job(session, job_id)
    now = utcnow()
    changed = session.execute(
        sa.update(TrainingJob)
        .where(
            TrainingJob.id == job_id,
            TrainingJob.status.in_([TrainingStatus.QUEUED, TrainingStatus.RUNNING]),
        )
        .values(status=TrainingStatus.CANCELLED, phase="cancelled", finished_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    session.refresh(row)
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        raise CloudConflictError(
            f"Training job {job_id} is {row.status.value}; only a queued or running job can be cancelled"
        )
    return row


def fail_interrupted(session: Session, *, now: datetime.datetime) -> int:
    """Fail the jobs a previous cloud process left RUNNING (it stopped or crashed); how many. Commits."""
    result = session.execute(
        sa.update(TrainingJob)
        .where(TrainingJob.status == TrainingStatus.RUNNING)
        .values(status=TrainingStatus.FAILED, phase="failed", error=INTERRUPTED, finished_at=now)
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def claim_next(session: Session, *, now: datetime.datetime) -> TrainingJob | None:
    """The oldest queued job, now RUNNING; None when none is queued. Commits."""
    while True:
        row = session.scalar(
            sa.select(TrainingJob)
            .where(TrainingJob.status == TrainingStatus.QUEUED)
            .order_by(TrainingJob.created_at, TrainingJob.id)
            .limit(1)
        )
        if row is None:
            return None
        claimed = session.execute(
            sa.update(TrainingJob)
            .where(TrainingJob.id == row.id, TrainingJob.status == TrainingStatus.QUEUED)
            .values(status=TrainingStatus.RUNNING, phase="starting", started_at=now)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            session.refresh(row)
            return row


def _while_running(session: Session, job_id: str, values: dict[str, Any]) -> bool:
    result = session.execute(
        sa.update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == TrainingStatus.RUNNING)
        .values(values)
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_progress(
    session: Session, job_id: str, *, phase: str, leaderboard: Sequence[dict[str, Any]]
) -> bool:
    """Store a running job's phase and leaderboard; False when it is no longer running. Commits."""
    return _while_running(
        session, job_id, {"phase": phase[:PHASE_MAX_LENGTH], "leaderboard": list(leaderboard)}
    )


def finish(
    session: Session,
    job_id: str,
    status: TrainingStatus,
    *,
    now: datetime.datetime,
    leaderboard: Sequence[dict[str, Any]],
    error: str | None = None,
    model_version: str | None = None,
) -> bool:
    """End a running job in ``status``; False when it was no longer running (cancelled). Commits."""
    values: dict[str, Any] = {
        "status": status,
        "phase": status.value.lower(),
        "finished_at": now,
        "leaderboard": list(leaderboard),
        "error": None if error is None else error[-ERROR_MAX_LENGTH:],
        "model_version": model_version,
    }
    return _while_running(session, job_id, values)


def statuses(session: Session, job_ids: Sequence[str]) -> dict[str, TrainingStatus]:
    """The status of each of ``job_ids`` that still exists."""
    if not job_ids:
        return {}
    rows = session.execute(sa.select(TrainingJob.id, TrainingJob.status).where(TrainingJob.id.in_(job_ids)))
    return {job_id: status for job_id, status in rows}


def _time_budget(row: TrainingJob) -> float:
    value = row.request.get("timeBudgetS")
    return float(value) if isinstance(value, int | float) else 0.0


def job_item(row: TrainingJob) -> TrainingJobItem:
    """The listing shape of ``row``."""
    task = row.request.get("task")
    return TrainingJobItem(
        id=row.id,
        model_name=row.model_name,
        dataset=row.dataset_name,
        task=task if isinstance(task, str) else "",
        status=row.status,
        phase=row.phase,
        model_version=row.model_version,
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        created_by=row.created_by,
    )


def job_public(row: TrainingJob) -> TrainingJobPublic:
    """The API shape of ``row``."""
    return TrainingJobPublic(
        **job_item(row).model_dump(),
        dataset_sha256=row.dataset_sha256,
        time_budget_seconds=_time_budget(row),
        request=row.request,
        leaderboard=row.leaderboard,
    )
