"""REST routes of jobs (AWS IoT CreateJob, DescribeJob, ListJobs, CancelJob, DeleteJob, and the executions of a
job or a thing); reads need any role, writes the operator role."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Response, status

from edgewise.cloud.auth import require_access
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import ERROR_RESPONSES
from edgewise.cloud.jobs import rules, secrets, service, targets
from edgewise.cloud.jobs.models import ExecutionStatus, Job, JobExecution, JobStatus
from edgewise.cloud.jobs.schemas import (
    AbortConfig,
    JobCancel,
    JobCreate,
    JobExecutionPublic,
    JobExecutionsPublic,
    JobProcessDetails,
    JobPublic,
    JobsPublic,
    JobSummaryPublic,
    RetryConfig,
    RolloutConfig,
    TimeoutConfig,
)
from edgewise.cloud.registry import rules as registry_rules

JobId = Annotated[
    str, Path(alias="jobId", min_length=1, max_length=rules.JOB_ID_MAX_LENGTH, pattern=rules.JOB_ID_PATTERN)
]
ThingName = Annotated[
    str,
    Path(
        alias="thingName",
        min_length=1,
        max_length=registry_rules.NAME_MAX_LENGTH,
        pattern=registry_rules.NAME_PATTERN,
    ),
]
NamespaceFilter = Annotated[
    str | None,
    Query(
        alias="namespaceId",
        min_length=1,
        max_length=rules.NAMESPACE_MAX_LENGTH,
        pattern=rules.NAMESPACE_PATTERN,
    ),
]
JobStatusFilter = Annotated[JobStatus | None, Query(alias="status")]
ExecutionStatusFilter = Annotated[ExecutionStatus | None, Query(alias="status")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
Force = Annotated[bool, Query()]

router = APIRouter(dependencies=[Depends(require_access())], responses=ERROR_RESPONSES, tags=["jobs"])

JOB_ARN_PREFIX = targets.ARN_PREFIX + "job/"


def job_summary(job: Job) -> JobSummaryPublic:
    """The listing shape of ``job``."""
    return JobSummaryPublic(
        job_id=job.job_id,
        job_arn=JOB_ARN_PREFIX + job.job_id,
        status=job.status,
        target_selection=job.target_selection,
        namespace_id=job.namespace_id,
        created_at=job.created_at,
        last_updated_at=job.last_updated_at,
        completed_at=job.completed_at,
    )


def job_public(job: Job, counts: dict[ExecutionStatus, int]) -> JobPublic:
    """The API shape of ``job`` with its executions counted by status."""
    return JobPublic(
        **job_summary(job).model_dump(),
        targets=[targets.Target.from_json(target).arn for target in job.targets],
        document=secrets.redact(job.document),
        description=job.description,
        job_executions_rollout_config=(
            RolloutConfig.model_validate(job.rollout_config) if job.rollout_config is not None else None
        ),
        abort_config=AbortConfig.model_validate(job.abort_config) if job.abort_config is not None else None,
        timeout_config=(
            TimeoutConfig(in_progress_timeout_in_minutes=job.in_progress_timeout_minutes)
            if job.in_progress_timeout_minutes is not None
            else None
        ),
        job_executions_retry_config=(
            RetryConfig.model_validate(job.retry_config) if job.retry_config is not None else None
        ),
        force_canceled=job.force_canceled,
        reason_code=job.reason_code,
        comment=job.comment,
        job_process_details=JobProcessDetails(
            number_of_queued_things=counts[ExecutionStatus.QUEUED],
            number_of_in_progress_things=counts[ExecutionStatus.IN_PROGRESS],
            number_of_succeeded_things=counts[ExecutionStatus.SUCCEEDED],
            number_of_failed_things=counts[ExecutionStatus.FAILED],
            number_of_rejected_things=counts[ExecutionStatus.REJECTED],
            number_of_timed_out_things=counts[ExecutionStatus.TIMED_OUT],
            number_of_removed_things=counts[ExecutionStatus.REMOVED],
            number_of_canceled_things=counts[ExecutionStatus.CANCELED],
            number_of_planned_things=(
                max(0, len(job.planned_things) - job.rollout_position) if job.status.is_active else 0
            ),
        ),
    )


def execution_public(execution: JobExecution, job: Job) -> JobExecutionPublic:
    """The API shape of ``execution``."""
    return JobExecutionPublic(
        job_id=job.job_id,
        thing_name=execution.thing_name,
        thing_arn=targets.thing_arn(execution.thing_name),
        namespace_id=job.namespace_id,
        execution_number=execution.execution_number,
        status=execution.status,
        status_details=execution.status_details,
        version_number=execution.version_number,
        retry_attempt=execution.retry_attempt,
        queued_at=execution.queued_at,
        started_at=execution.started_at,
        last_updated_at=execution.last_updated_at,
        step_timeout_at=execution.step_timeout_at,
        in_progress_timeout_at=execution.in_progress_timeout_at,
    )


def _described(session: SessionDep, job: Job) -> JobPublic:
    return job_public(job, service.process_details(session, job))


@router.post("/jobs", status_code=status.HTTP_201_CREATED)
def create_job(session: SessionDep, sealer: secrets.SealerDep, request: JobCreate) -> JobPublic:
    """Create a job for things and thing groups, and start rolling it out."""
    return _described(session, service.create_job(session, request, sealer=sealer))


@router.get("/jobs")
def list_jobs(
    session: SessionDep,
    status_filter: JobStatusFilter = None,
    namespace_id: NamespaceFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> JobsPublic:
    """List jobs, newest first."""
    page = service.list_jobs(
        session, status=status_filter, namespace_id=namespace_id, limit=limit, offset=offset
    )
    return JobsPublic(data=[job_summary(job) for job in page.items], count=page.total)


@router.get("/jobs/{jobId}")
def get_job(session: SessionDep, job_id: JobId) -> JobPublic:
    """Describe a job, with how many things' executions are in each status."""
    return _described(session, service.get_job(session, job_id))


@router.post("/jobs/{jobId}/cancel")
def cancel_job(
    session: SessionDep, job_id: JobId, request: Annotated[JobCancel | None, Body()] = None
) -> JobPublic:
    """Cancel a job: queued executions are cancelled, in-progress ones too with force."""
    request = request or JobCancel()
    job = service.cancel_job(
        session, job_id, force=request.force, reason_code=request.reason_code, comment=request.comment
    )
    return _described(session, job)


@router.delete("/jobs/{jobId}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_job(session: SessionDep, job_id: JobId, force: Force = False) -> None:
    """Delete a job (one in progress only with force=true), cancelling its pending executions."""
    service.delete_job(session, job_id, force=force)


@router.get("/jobs/{jobId}/things")
def list_job_executions(
    session: SessionDep,
    job_id: JobId,
    status_filter: ExecutionStatusFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> JobExecutionsPublic:
    """List a job's executions (every run, retries included), by thing."""
    job = service.get_job(session, job_id)
    page = service.list_job_executions(session, job_id, status=status_filter, limit=limit, offset=offset)
    return JobExecutionsPublic(data=[execution_public(item, job) for item in page.items], count=page.total)


@router.get("/things/{thingName}/jobs")
def list_thing_executions(
    session: SessionDep,
    thing_name: ThingName,
    status_filter: ExecutionStatusFilter = None,
    namespace_id: NamespaceFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> JobExecutionsPublic:
    """List a thing's job executions, newest first."""
    page = service.list_thing_executions(
        session, thing_name, status=status_filter, namespace_id=namespace_id, limit=limit, offset=offset
    )
    return JobExecutionsPublic(
        data=[execution_public(execution, job) for execution, job in page.items], count=page.total
    )
