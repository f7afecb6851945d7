"""The device side of jobs: what GetPendingJobExecutions, StartNextPendingJobExecution, DescribeJobExecution
and UpdateJobExecution do to the store, for one thing in one namespace (None: the plain topics).

A thing's pending executions are its QUEUED and IN_PROGRESS ones of jobs in that namespace: IN_PROGRESS first,
then QUEUED, each oldest first; the first is "next". Every function returns the accepted reply's body without
``timestamp`` and ``clientToken`` (the worker adds them) and leaves what it changed in the session for the
caller to commit (the worker commits a batch of requests at once), or raises
:class:`~edgewise.protocol.jobs.JobsRejection` with AWS's error code before it changes anything, so a rejected
request may share the transaction of others.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, load_only
from sqlalchemy.orm.attributes import set_committed_value

from edgewise.cloud.jobs import protocol, transitions
from edgewise.cloud.jobs.models import ExecutionStatus, Job, JobExecution, JobStatus
from edgewise.protocol import jobs
from edgewise.protocol.jobs import JobsRejection, Operation, Request


def order_key(execution: JobExecution, job: Job) -> tuple[int, datetime.datetime, str, int]:
    """Where an execution stands in its thing's pending list (smallest first)."""
    rank = 0 if execution.status is ExecutionStatus.IN_PROGRESS else 1
    return rank, execution.queued_at, job.job_id, execution.execution_number


#: What the device operations read of a job with its executions: the rest (its targets, its rollout and abort
#: configurations, and its document where the answer leaves it out) is read only if used.
_JOB_FOR_DEVICES = (
    Job.id,
    Job.job_id,
    Job.namespace_id,
    Job.status,
    Job.in_progress_timeout_minutes,
    Job.retry_config,
)


def _with_job(*, document: bool = True) -> sa.Select[JobExecution, Job]:
    """Executions joined with their jobs, of which what the device operations need."""
    job_columns = (*_JOB_FOR_DEVICES, Job.document) if document else _JOB_FOR_DEVICES
    return (
        sa.select(JobExecution, Job)
        .join(Job, Job.id == JobExecution.job_pk)
        .where(Job.status != JobStatus.DELETION_IN_PROGRESS)
        .options(load_only(*job_columns))
    )


def _pending_query(*, document: bool = True) -> sa.Select[JobExecution, Job]:
    return _with_job(document=document).where(
        JobExecution.status.in_([ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS])
    )


def _in_namespace(plain: bool) -> sa.ColumnElement[bool]:
    """Jobs in the namespace given as the ``namespace_id`` parameter (``plain``: in none)."""
    return Job.namespace_id.is_(None) if plain else Job.namespace_id == sa.bindparam("namespace_id")


# The statements a device's request runs are built once for each shape, with its values as parameters: built
# anew for each request, their construction and cache keys cost a tenth of the jobs worker's CPU.


@functools.cache
def _pending_statement(*, plain: bool, for_update: bool, document: bool) -> sa.Select[JobExecution, Job]:
    """A thing's pending executions; parameters ``thing_name`` and ``namespace_id`` (unless ``plain``)."""
    query = _pending_query(document=document).where(
        JobExecution.thing_name == sa.bindparam("thing_name"), _in_namespace(plain)
    )
    return query.with_for_update(of=JobExecution) if for_update else query


def pending(
    session: Session,
    thing_name: str,
    namespace_id: str | None,
    *,
    for_update: bool = False,
    document: bool = True,
) -> list[tuple[JobExecution, Job]]:
    """The thing's pending executions in ``namespace_id``, next first (their jobs' documents read unless
    ``document`` is False)."""
    query = _pending_statement(plain=namespace_id is None, for_update=for_update, document=document)
    found = session.execute(query, {"thing_name": thing_name, "namespace_id": namespace_id})
    rows = [(execution, job) for execution, job in found.all()]
    return sorted(rows, key=lambda row: order_key(*row))


#: Things per query of :func:`pending_of` (SQLite allows 32,766 bound values; PostgreSQL plans long lists slower).
_THINGS_PER_QUERY = 500


def pending_of(
    session: Session, pairs: Collection[tuple[str, str | None]], *, for_update: bool = False
) -> dict[tuple[str, str | None], list[tuple[JobExecution, Job]]]:
    """:func:`pending` of each (thing, namespace) in ``pairs``, read with one query per 500 things, and their
    jobs' documents with one more: read with every row, a job's document was decoded once per thing."""
    found: dict[tuple[str, str | None], list[tuple[JobExecution, Job]]] = {pair: [] for pair in pairs}
    things = sorted({thing for thing, _ in pairs})
    jobs_read: dict[int, Job] = {}
    for start in range(0, len(things), _THINGS_PER_QUERY):
        query = _pending_query(document=False).where(
            JobExecution.thing_name.in_(things[start : start + _THINGS_PER_QUERY])
        )
        if for_update:
            # In id order, as the service's cancellations lock them, so that both take shared rows in one order.
            query = query.order_by(JobExecution.id).with_for_update(of=JobExecution)
        for execution, job in session.execute(query).all():
            jobs_read[job.id] = job
            rows = found.get((execution.thing_name, job.namespace_id))
            if rows is not None:
                rows.append((execution, job))
    _read_documents(session, jobs_read)
    for rows in found.values():
        rows.sort(key=lambda row: order_key(*row))
    return found


def _read_documents(session: Session, jobs_read: Mapping[int, Job]) -> None:
    """Read the documents of ``jobs_read`` (by id) that are not loaded yet, in one query."""
    missing = [pk for pk, job in jobs_read.items() if "document" in sa.inspect(job).unloaded]
    if missing:
        query = sa.select(Job.id, Job.document).where(Job.id.in_(missing))
        for pk, document in session.execute(query).all():
            set_committed_value(jobs_read[pk], "document", document)


@dataclass(frozen=True)
class ReadAhead:
    """What a batch of requests for different things reads, read (and locked) with a query per kind of request
    instead of one per request: start-next's pending lists, and the executions updates name (without their jobs'
    documents). A request whose rows are not here reads them itself."""

    pending: Mapping[tuple[str, str | None], list[tuple[JobExecution, Job]]]
    runs: Mapping[tuple[str, str | None, str], list[tuple[JobExecution, Job]]]

    @classmethod
    def read(cls, session: Session, operations: Iterable[Operation]) -> ReadAhead:
        """Read ahead for ``operations`` (one per thing at most). Blocks."""
        starts: set[tuple[str, str | None]] = set()
        updates: set[tuple[str, str | None, str]] = set()
        for operation in operations:
            if operation.kind == "start_next":
                starts.add((operation.thing_name, operation.namespace_id))
            elif operation.kind == "update" and operation.job_id is not None:
                updates.add((operation.thing_name, operation.namespace_id, operation.job_id))
        pending_rows = pending_of(session, starts, for_update=True) if starts else {}
        return cls(pending_rows, _runs_of(session, updates))

    def execution(
        self, thing_name: str, namespace_id: str | None, job_id: str, number: int | None
    ) -> tuple[JobExecution, Job] | None:
        """The thing's execution ``number`` of the job (None: its latest), if it was read ahead."""
        rows = self.runs.get((thing_name, namespace_id, job_id), [])
        if number is not None:
            rows = [row for row in rows if row[0].execution_number == number]
        return max(rows, key=lambda row: row[0].execution_number, default=None)


def _runs_of(
    session: Session, wanted: Collection[tuple[str, str | None, str]]
) -> dict[tuple[str, str | None, str], list[tuple[JobExecution, Job]]]:
    """Every execution of each (thing, namespace, job id) in ``wanted``, locked, with its job (no document)."""
    found: dict[tuple[str, str | None, str], list[tuple[JobExecution, Job]]] = {key: [] for key in wanted}
    keys = sorted(found, key=lambda key: (key[0], key[2]))
    for start in range(0, len(keys), _THINGS_PER_QUERY):
        pairs = [(thing, job_id) for thing, _, job_id in keys[start : start + _THINGS_PER_QUERY]]
        query = (
            _with_job(document=False)
            .where(sa.tuple_(JobExecution.thing_name, Job.job_id).in_(pairs))
            .order_by(JobExecution.id)
            .with_for_update(of=JobExecution)
        )
        for execution, job in session.execute(query).all():
            rows = found.get((execution.thing_name, job.namespace_id, job.job_id))
            if rows is not None:
                rows.append((execution, job))
    return found


def get_pending(session: Session, thing_name: str, namespace_id: str | None) -> dict[str, Any]:
    """GetPendingJobExecutions: ``inProgressJobs`` and ``queuedJobs``."""
    rows = pending(session, thing_name, namespace_id, document=False)
    return jobs.PendingExecutions(
        in_progress=tuple(
            protocol.execution_summary(execution, job)
            for execution, job in rows
            if execution.status is ExecutionStatus.IN_PROGRESS
        ),
        queued=tuple(
            protocol.execution_summary(execution, job)
            for execution, job in rows
            if execution.status is ExecutionStatus.QUEUED
        ),
    ).payload()


def _set_step_timer(execution: JobExecution, minutes: int | None, *, now: datetime.datetime) -> None:
    if minutes is None or execution.status is not ExecutionStatus.IN_PROGRESS:
        return
    execution.step_timeout_at = None if minutes == -1 else now + datetime.timedelta(minutes=minutes)


def start_next(
    session: Session,
    thing_name: str,
    namespace_id: str | None,
    request: Request,
    *,
    now: datetime.datetime,
    read: ReadAhead | None = None,
) -> dict[str, Any]:
    """StartNextPendingJobExecution: the next execution, moved to IN_PROGRESS if it was QUEUED."""
    rows = None if read is None else read.pending.get((thing_name, namespace_id))
    if rows is None:
        rows = pending(session, thing_name, namespace_id, for_update=True)
    if not rows:
        return jobs.ExecutionReply().payload()
    execution, job = rows[0]
    if execution.status is ExecutionStatus.QUEUED:
        transitions.change_status(
            session,
            job,
            execution,
            ExecutionStatus.IN_PROGRESS,
            now=now,
            status_details=request.status_details,
            by_device=True,
        )
        _set_step_timer(execution, request.step_timeout_in_minutes, now=now)
    return jobs.ExecutionReply(protocol.execution_data(execution, job)).payload()


def _job(session: Session, job_id: str, namespace_id: str | None) -> Job:
    query = sa.select(Job).where(
        Job.job_id == job_id,
        _in_namespace(namespace_id is None),
        Job.status != JobStatus.DELETION_IN_PROGRESS,
    )
    job = session.scalar(query, {"namespace_id": namespace_id})
    if job is None:
        where = "" if namespace_id is None else f" in namespace {namespace_id!r}"
        raise JobsRejection("ResourceNotFound", f"Job {job_id!r} does not exist{where}")
    return job


@functools.cache
def _execution_statement(
    *, plain: bool, numbered: bool, for_update: bool, document: bool
) -> sa.Select[JobExecution, Job]:
    """A thing's execution of a job and the job; parameters ``job_id``, ``thing_name``, ``namespace_id`` (unless
    ``plain``) and ``number`` (if ``numbered``; else the latest)."""
    query = _with_job(document=document).where(
        Job.job_id == sa.bindparam("job_id"),
        _in_namespace(plain),
        JobExecution.thing_name == sa.bindparam("thing_name"),
    )
    if numbered:
        query = query.where(JobExecution.execution_number == sa.bindparam("number"))
    query = query.order_by(JobExecution.execution_number.desc()).limit(1)
    return query.with_for_update(of=JobExecution) if for_update else query


def _execution(
    session: Session,
    thing_name: str,
    namespace_id: str | None,
    job_id: str,
    number: int | None,
    *,
    for_update: bool = False,
    document: bool = True,
) -> tuple[JobExecution, Job]:
    """The thing's execution ``number`` of the job (None: its latest) and the job (with its document unless
    ``document`` is False), read together."""
    query = _execution_statement(
        plain=namespace_id is None, numbered=number is not None, for_update=for_update, document=document
    )
    values = {"job_id": job_id, "namespace_id": namespace_id, "thing_name": thing_name, "number": number}
    row = session.execute(query, values).first()
    if row is not None:
        execution, job = row
        return execution, job
    job = _job(session, job_id, namespace_id)
    number_text = "" if number is None else f" number {number}"
    raise JobsRejection(
        "ResourceNotFound", f"Job {job.job_id!r} has no execution{number_text} on thing {thing_name!r}"
    )


def describe(
    session: Session, thing_name: str, namespace_id: str | None, job_id: str, request: Request
) -> dict[str, Any]:
    """DescribeJobExecution: one execution (``$next``: the next pending one, or none)."""
    include_document = request.include_job_document is not False
    if job_id == jobs.NEXT:
        rows = pending(session, thing_name, namespace_id)
        if not rows:
            return jobs.ExecutionReply().payload()
        execution, job = rows[0]
    else:
        execution, job = _execution(
            session, thing_name, namespace_id, job_id, request.execution_number, document=include_document
        )
        if execution.status.is_terminal:
            raise JobsRejection(
                "TerminalStateReached",
                f"The execution of job {job_id!r} on thing {thing_name!r} is {execution.status.value}",
            )
    return jobs.ExecutionReply(
        protocol.execution_data(execution, job, include_document=include_document)
    ).payload()


def update(
    session: Session,
    thing_name: str,
    namespace_id: str | None,
    job_id: str,
    request: Request,
    *,
    now: datetime.datetime,
    read: ReadAhead | None = None,
) -> dict[str, Any]:
    """UpdateJobExecution: the device reports a status (and details, and a step timer)."""
    assert request.status is not None
    found = (
        None if read is None else read.execution(thing_name, namespace_id, job_id, request.execution_number)
    )
    execution, job = found or _execution(
        session,
        thing_name,
        namespace_id,
        job_id,
        request.execution_number,
        for_update=True,
        document=bool(request.include_job_document),
    )
    state = protocol.execution_state(execution).payload()
    if request.expected_version is not None and request.expected_version != execution.version_number:
        raise JobsRejection(
            "VersionMismatch",
            f"The execution is at version {execution.version_number}, not {request.expected_version}",
            execution_state=state,
        )
    if execution.status.is_terminal:
        raise JobsRejection(
            "InvalidStateTransition",
            f"The execution of job {job_id!r} on thing {thing_name!r} is {execution.status.value} already;"
            f" it cannot become {request.status.value}",
            execution_state=state,
        )
    transitions.change_status(
        session,
        job,
        execution,
        request.status,
        now=now,
        status_details=request.status_details,
        by_device=True,
    )
    _set_step_timer(execution, request.step_timeout_in_minutes, now=now)
    return jobs.UpdateReply(
        protocol.execution_state(execution) if request.include_job_execution_state else None,
        job.document if request.include_job_document else None,
    ).payload()
