"""How the store's rows become the Jobs protocol's values (:mod:`edgewise.protocol.jobs`): executions, their
states and summaries, and the pending lists of ``J/notify``.

Pure functions, no store: :mod:`edgewise.cloud.jobs.executions` and :mod:`edgewise.cloud.jobs.notifications`
read the rows and build the answers. Timestamps are epoch seconds.
"""

from __future__ import annotations

import datetime

from edgewise.cloud.jobs.models import Job, JobExecution
from edgewise.protocol import jobs


def timestamp(moment: datetime.datetime) -> int:
    """Epoch seconds, what every awsiotsdk parser expects."""
    return int(moment.timestamp())


def _optional_timestamp(moment: datetime.datetime | None) -> int | None:
    return None if moment is None else timestamp(moment)


def execution_state(execution: JobExecution) -> jobs.ExecutionState:
    """A ``JobExecutionState``."""
    return jobs.ExecutionState(
        execution.status.value, dict(execution.status_details), execution.version_number
    )


def execution_summary(execution: JobExecution, job: Job) -> jobs.ExecutionSummary:
    """A ``JobExecutionSummary`` (the lists of GetPendingJobExecutions and ``J/notify``)."""
    return jobs.ExecutionSummary(
        job.job_id,
        queued_at=timestamp(execution.queued_at),
        last_updated_at=timestamp(execution.last_updated_at),
        version_number=execution.version_number,
        execution_number=execution.execution_number,
        started_at=_optional_timestamp(execution.started_at),
    )


def execution_data(execution: JobExecution, job: Job, *, include_document: bool = True) -> jobs.Execution:
    """A ``JobExecution``, with the job document unless ``include_document`` is False."""
    return jobs.Execution(
        job.job_id,
        execution.status.value,
        execution.version_number,
        execution_number=execution.execution_number,
        document=job.document if include_document else None,
        thing_name=execution.thing_name,
        status_details=dict(execution.status_details),
        queued_at=timestamp(execution.queued_at),
        last_updated_at=timestamp(execution.last_updated_at),
        started_at=_optional_timestamp(execution.started_at),
    )


def pending_lists(
    pending: list[tuple[JobExecution, Job]], *, limit: int | None = None
) -> dict[str, tuple[jobs.ExecutionSummary, ...]]:
    """``{"IN_PROGRESS": (...), "QUEUED": (...)}`` of ``pending`` (already in order), empty lists left out."""
    lists: dict[str, list[jobs.ExecutionSummary]] = {}
    for execution, job in pending[:limit]:
        lists.setdefault(execution.status.value, []).append(execution_summary(execution, job))
    return {status: tuple(summaries) for status, summaries in lists.items()}
