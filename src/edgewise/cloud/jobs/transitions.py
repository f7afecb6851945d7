"""How executions come to be and change status, for the service, the device operations and the engine alike.

Each function changes rows in the caller's session without committing, and records the change for
:class:`~edgewise.cloud.jobs.events.JobEvents`. A FAILED or TIMED_OUT execution of an active job is retried
here, in the same transaction, when the job's retry criteria allow it: the thing gets a new QUEUED execution
with the next execution number, so its pending list never flickers empty between the two.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.jobs.events import ExecutionChange, JobStatusChange, record
from edgewise.cloud.jobs.models import ExecutionStatus, Job, JobExecution, JobStatus
from edgewise.cloud.jobs.schemas import RetryConfig

#: The execution statuses each retry failure type covers.
RETRY_TYPES: dict[str, frozenset[ExecutionStatus]] = {
    "FAILED": frozenset({ExecutionStatus.FAILED}),
    "TIMED_OUT": frozenset({ExecutionStatus.TIMED_OUT}),
    "ALL": frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT}),
}


def _record_execution(
    session: Session, job: Job, execution: JobExecution, old_status: ExecutionStatus | None
) -> None:
    record(
        session,
        ExecutionChange(
            job_id=job.job_id,
            namespace_id=job.namespace_id,
            thing_name=execution.thing_name,
            execution_number=execution.execution_number,
            old_status=old_status,
            status=execution.status,
            status_details=dict(execution.status_details),
            queued_at=execution.queued_at,
        ),
    )


def queue(
    session: Session,
    job: Job,
    thing_name: str,
    *,
    now: datetime.datetime,
    execution_number: int = 1,
    retry_attempt: int = 0,
) -> JobExecution:
    """A new QUEUED execution of ``job`` on ``thing_name``."""
    execution = JobExecution(
        job_pk=job.id,
        thing_name=thing_name,
        execution_number=execution_number,
        status=ExecutionStatus.QUEUED,
        status_details={},
        version_number=1,
        retry_attempt=retry_attempt,
        queued_at=now,
        last_updated_at=now,
    )
    session.add(execution)
    _record_execution(session, job, execution, None)
    return execution


def change_status(
    session: Session,
    job: Job,
    execution: JobExecution,
    status: ExecutionStatus,
    *,
    now: datetime.datetime,
    status_details: Mapping[str, str] | None = None,
    by_device: bool = False,
) -> None:
    """Move ``execution`` to ``status`` (or only update its details when the status is the same).

    A device's update bumps the version; the service's own changes (timeouts, cancellation, removal) do not,
    as in AWS IoT. Leaving QUEUED sets ``startedAt``; entering IN_PROGRESS starts the job's in-progress timer.
    """
    old_status = execution.status
    execution.status = status
    if status_details is not None:
        execution.status_details = dict(status_details)
    if old_status is ExecutionStatus.QUEUED and status is not ExecutionStatus.QUEUED:
        execution.started_at = execution.started_at or now
    starting = status is ExecutionStatus.IN_PROGRESS and old_status is not ExecutionStatus.IN_PROGRESS
    if starting and job.in_progress_timeout_minutes is not None:
        execution.in_progress_timeout_at = now + datetime.timedelta(minutes=job.in_progress_timeout_minutes)
    if status.is_terminal:
        execution.step_timeout_at = None
        execution.in_progress_timeout_at = None
    if by_device:
        execution.version_number += 1
    execution.last_updated_at = now
    _record_execution(session, job, execution, old_status)
    if status.is_terminal and old_status.is_pending:
        retry(session, job, execution, now=now)


def retry(
    session: Session, job: Job, execution: JobExecution, *, now: datetime.datetime
) -> JobExecution | None:
    """Queue the next run of ``execution`` if it ended in a way ``job``'s retry criteria still allow."""
    if not job.status.is_active or job.retry_config is None:
        return None
    config = RetryConfig.model_validate(job.retry_config)
    for criterion in config.criteria_list:
        types = RETRY_TYPES[criterion.failure_type]
        if execution.status not in types:
            continue
        session.flush()
        ended = session.scalar(
            sa.select(sa.func.count())
            .select_from(JobExecution)
            .where(
                JobExecution.job_pk == job.id,
                JobExecution.thing_name == execution.thing_name,
                JobExecution.status.in_(types),
            )
        )
        if (ended or 0) > criterion.number_of_retries:
            return None
        return queue(
            session,
            job,
            execution.thing_name,
            now=now,
            execution_number=execution.execution_number + 1,
            retry_attempt=execution.retry_attempt + 1,
        )
    return None


def change_job_status(
    session: Session,
    job: Job,
    status: JobStatus,
    *,
    now: datetime.datetime,
    reason_code: str | None = None,
    comment: str | None = None,
) -> None:
    """Move ``job`` to ``status`` and record it."""
    old_status = job.status
    job.status = status
    if reason_code is not None:
        job.reason_code = reason_code
    if comment is not None:
        job.comment = comment
    if status is JobStatus.COMPLETED:
        job.completed_at = now
    job.last_updated_at = now
    record(
        session,
        JobStatusChange(
            job_id=job.job_id,
            namespace_id=job.namespace_id,
            old_status=old_status,
            status=status,
            reason_code=job.reason_code,
            comment=job.comment,
        ),
    )


def cancel_pending(session: Session, job: Job, *, now: datetime.datetime, include_in_progress: bool) -> int:
    """Cancel ``job``'s QUEUED executions (and IN_PROGRESS ones with ``include_in_progress``); how many."""
    statuses = [ExecutionStatus.QUEUED]
    if include_in_progress:
        statuses.append(ExecutionStatus.IN_PROGRESS)
    executions = session.scalars(
        sa.select(JobExecution)
        .where(JobExecution.job_pk == job.id, JobExecution.status.in_(statuses))
        .order_by(JobExecution.id)
        .with_for_update()
    ).all()
    for execution in executions:
        change_status(session, job, execution, ExecutionStatus.CANCELED, now=now)
    return len(executions)


def latest_executions(session: Session, job: Job) -> list[JobExecution]:
    """Each thing's latest execution of ``job``, by thing name."""
    newest = (
        sa.select(JobExecution.thing_name, sa.func.max(JobExecution.execution_number).label("number"))
        .where(JobExecution.job_pk == job.id)
        .group_by(JobExecution.thing_name)
        .subquery()
    )
    return list(
        session.scalars(
            sa.select(JobExecution)
            .join(
                newest,
                sa.and_(
                    JobExecution.thing_name == newest.c.thing_name,
                    JobExecution.execution_number == newest.c.number,
                ),
            )
            .where(JobExecution.job_pk == job.id)
            .order_by(JobExecution.thing_name)
        )
    )


def count_things(session: Session, job: Job, statuses: frozenset[ExecutionStatus] | None = None) -> int:
    """How many things have an execution of ``job`` (with one of ``statuses``, if given)."""
    query = sa.select(sa.func.count(sa.distinct(JobExecution.thing_name))).where(
        JobExecution.job_pk == job.id
    )
    if statuses is not None:
        query = query.where(JobExecution.status.in_(statuses))
    return session.scalar(query) or 0
