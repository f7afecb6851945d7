"""Jobs behaviour for operators and the deployments layer: create, describe, list, cancel and delete jobs,
and list their executions. The Python API the fleet deployments build on::

    job = service.create_job(session, JobCreate(job_id="fw-42", targets=["sensors"], document={...},
                                                namespace_id="aws-gg-deployment", target_selection="CONTINUOUS"))
    service.cancel_job(session, "fw-42", force=False)

Every function takes the session first, validates its input (raising :class:`InvalidRequestError` naming the
field, :class:`NotFoundError` or :class:`CloudConflictError`, with nothing stored), and commits its change. Status
changes are told to :class:`~edgewise.cloud.jobs.events.JobEvents` listeners on commit. ``now`` defaults to
the current time; tests and the engine pass their clock's.

Creating a job resolves its targets to things and rolls out the first minute's executions at once; the
:class:`~edgewise.cloud.jobs.engine.JobEngine` rolls out the rest at the configured rate. Deleting marks the
job DELETION_IN_PROGRESS and cancels its pending executions; the engine removes it at its next pass.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import AlreadyExistsError, CloudConflictError, InvalidRequestError, NotFoundError
from edgewise.cloud.jobs import rollout, targets, transitions
from edgewise.cloud.jobs.models import ExecutionStatus, Job, JobExecution, JobStatus
from edgewise.cloud.jobs.schemas import JobCreate
from edgewise.cloud.jobs.secrets import SecretSealer
from edgewise.cloud.registry import Page
from edgewise.cloud.registry import rules as registry_rules

logger = logging.getLogger(__name__)

JOB = "Job"


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= 1000:
        raise InvalidRequestError("limit", f"{limit} is not between 1 and 1000")
    if offset < 0:
        raise InvalidRequestError("offset", f"{offset} is negative")


def create_job(
    session: Session, spec: JobCreate, *, sealer: SecretSealer, now: datetime.datetime | None = None
) -> Job:
    """Create the job ``spec`` describes and queue its first executions; secret values in its document (see
    :mod:`edgewise.cloud.jobs.secrets`) are stored sealed by ``sealer``.

    Raises:
        InvalidRequestError: a secret value is not a string (the redaction marker of an API view included).
        AlreadyExistsError: there is a job ``spec.job_id``.
    """
    now = now or utcnow()
    document = sealer.seal(spec.document, job_id=spec.job_id)
    if session.scalar(sa.select(Job.id).where(Job.job_id == spec.job_id)) is not None:
        raise AlreadyExistsError(JOB, spec.job_id)
    resolved = targets.resolve_all(session, spec.targets)
    job = Job(
        job_id=spec.job_id,
        namespace_id=spec.namespace_id,
        description=spec.description,
        document=document,
        targets=[target.to_json() for target in resolved],
        target_selection=spec.target_selection,
        rollout_config=_config_json(spec.job_executions_rollout_config),
        abort_config=_config_json(spec.abort_config),
        in_progress_timeout_minutes=(
            spec.timeout_config.in_progress_timeout_in_minutes if spec.timeout_config is not None else None
        ),
        retry_config=_config_json(spec.job_executions_retry_config),
        status=JobStatus.IN_PROGRESS,
        planned_things=targets.things_of(session, resolved),
        rollout_position=0,
        window_started_at=now,
        window_count=0,
        created_at=now,
        last_updated_at=now,
    )
    session.add(job)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise AlreadyExistsError(JOB, spec.job_id) from exc
    rollout.advance(session, job, now=now)
    session.commit()
    logger.info(
        "job-created",
        extra={"job": job.job_id, "namespace": job.namespace_id, "things": len(job.planned_things)},
    )
    return job


def _config_json(config: BaseModel | None) -> dict[str, Any] | None:
    return None if config is None else config.model_dump(by_alias=True, exclude_none=True, mode="json")


def get_job(session: Session, job_id: str, *, for_update: bool = False) -> Job:
    """The job ``job_id`` (a job being deleted is gone already)."""
    query = sa.select(Job).where(Job.job_id == job_id, Job.status != JobStatus.DELETION_IN_PROGRESS)
    job = session.scalar(query.with_for_update() if for_update else query)
    if job is None:
        raise NotFoundError(JOB, job_id)
    return job


def list_jobs(
    session: Session,
    *,
    status: JobStatus | None = None,
    namespace_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[Job]:
    """Jobs, newest first, optionally only those with ``status`` or in ``namespace_id``."""
    _check_page(limit, offset)
    where: list[sa.ColumnElement[bool]] = [Job.status != JobStatus.DELETION_IN_PROGRESS]
    if status is not None:
        where.append(Job.status == status)
    if namespace_id is not None:
        where.append(Job.namespace_id == namespace_id)
    total = session.scalar(sa.select(sa.func.count()).select_from(Job).where(*where)) or 0
    items = session.scalars(
        sa.select(Job)
        .where(*where)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return Page(list(items), total)


def process_details(session: Session, job: Job) -> dict[ExecutionStatus, int]:
    """How many things' latest executions of ``job`` are in each status."""
    counts = dict.fromkeys(ExecutionStatus, 0)
    for execution in transitions.latest_executions(session, job):
        counts[execution.status] += 1
    return counts


def cancel_job(
    session: Session,
    job_id: str,
    *,
    force: bool = False,
    reason_code: str | None = None,
    comment: str | None = None,
    now: datetime.datetime | None = None,
) -> Job:
    """Cancel a job: no more executions are created, QUEUED ones are CANCELED, and with ``force`` IN_PROGRESS
    ones too. A cancelled job can be cancelled again with ``force`` to cancel what is still in progress."""
    now = now or utcnow()
    job = get_job(session, job_id, for_update=True)
    if job.status is JobStatus.COMPLETED:
        raise CloudConflictError(f"Job {job_id!r} is COMPLETED and cannot be cancelled")
    if job.status is JobStatus.CANCELED and not force:
        raise CloudConflictError(
            f"Job {job_id!r} is already CANCELED; give force to cancel its in-progress executions"
        )
    if job.status is not JobStatus.CANCELED:
        transitions.change_job_status(
            session, job, JobStatus.CANCELED, now=now, reason_code=reason_code, comment=comment
        )
    job.force_canceled = job.force_canceled or force
    cancelled = transitions.cancel_pending(session, job, now=now, include_in_progress=force)
    session.commit()
    logger.info("job-cancelled", extra={"job": job_id, "force": force, "executions": cancelled})
    return job


def delete_job(
    session: Session, job_id: str, *, force: bool = False, now: datetime.datetime | None = None
) -> None:
    """Delete a job; one still IN_PROGRESS only with ``force``. Its pending executions are CANCELED now and
    the job is removed at the engine's next pass."""
    now = now or utcnow()
    job = get_job(session, job_id, for_update=True)
    if job.status is JobStatus.IN_PROGRESS and not force:
        raise CloudConflictError(f"Job {job_id!r} is IN_PROGRESS; cancel it first or give force to delete it")
    transitions.change_job_status(session, job, JobStatus.DELETION_IN_PROGRESS, now=now)
    transitions.cancel_pending(session, job, now=now, include_in_progress=True)
    session.commit()
    logger.info("job-deleted", extra={"job": job_id})


def list_job_executions(
    session: Session,
    job_id: str,
    *,
    status: ExecutionStatus | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[JobExecution]:
    """Every execution of a job (retries included), by thing and execution number."""
    _check_page(limit, offset)
    job = get_job(session, job_id)
    where: list[sa.ColumnElement[bool]] = [JobExecution.job_pk == job.id]
    if status is not None:
        where.append(JobExecution.status == status)
    total = session.scalar(sa.select(sa.func.count()).select_from(JobExecution).where(*where)) or 0
    items = session.scalars(
        sa.select(JobExecution)
        .where(*where)
        .order_by(JobExecution.thing_name, JobExecution.execution_number)
        .limit(limit)
        .offset(offset)
    )
    return Page(list(items), total)


def list_thing_executions(
    session: Session,
    thing_name: str,
    *,
    status: ExecutionStatus | None = None,
    namespace_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[tuple[JobExecution, Job]]:
    """A thing's executions of every job, newest first, with their jobs."""
    registry_rules.check_name("thingName", thing_name)
    _check_page(limit, offset)
    where: list[sa.ColumnElement[bool]] = [
        JobExecution.thing_name == thing_name,
        Job.status != JobStatus.DELETION_IN_PROGRESS,
    ]
    if status is not None:
        where.append(JobExecution.status == status)
    if namespace_id is not None:
        where.append(Job.namespace_id == namespace_id)
    joined = sa.select(sa.func.count()).select_from(JobExecution).join(Job, Job.id == JobExecution.job_pk)
    total = session.scalar(joined.where(*where)) or 0
    rows = session.execute(
        sa.select(JobExecution, Job)
        .join(Job, Job.id == JobExecution.job_pk)
        .where(*where)
        .order_by(JobExecution.queued_at.desc(), JobExecution.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return Page([(execution, job) for execution, job in rows], total)
