"""REST routes of training jobs: queue one, list them, follow one, cancel one. Reads: any role; writes: operator.

A job is queued with 202 and runs in the cloud's :class:`~edgewise.cloud.training.worker.TrainingWorker`; poll
``GET /training-jobs/{id}`` for its phase and leaderboard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status

from edgewise.cloud.auth import CurrentToken, require_access
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import ERROR_RESPONSES
from edgewise.cloud.training import service
from edgewise.cloud.training.models import TrainingStatus
from edgewise.cloud.training.schemas import TrainingJobCreate, TrainingJobPublic, TrainingJobsPublic
from edgewise.ml.names import ML_NAME_PATTERN

if TYPE_CHECKING:
    from edgewise.cloud.services import CloudServices

JobId = Annotated[str, Path(alias="jobId", min_length=1, max_length=36, pattern=r"^[0-9a-f-]+$")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
ModelFilter = Annotated[
    str | None,
    Query(min_length=1, max_length=64, pattern=ML_NAME_PATTERN, description="Only this model's jobs"),
]

router = APIRouter(dependencies=[Depends(require_access())], responses=ERROR_RESPONSES, tags=["training"])


@router.post(
    "/training-jobs",
    status_code=status.HTTP_202_ACCEPTED,
    responses={503: {"description": "The ML libraries are not installed"}},
)
def create_training_job(
    session: SessionDep, request: Request, token: CurrentToken, body: TrainingJobCreate
) -> TrainingJobPublic:
    """Queue a training job; it produces a new version of the model when it succeeds."""
    services: CloudServices = request.app.state.services
    row = service.create_job(
        session, body, created_by=token.name, default_ray_address=services.settings.training_ray_address
    )
    return service.job_public(row)


@router.get("/training-jobs")
def list_training_jobs(
    session: SessionDep,
    model: ModelFilter = None,
    job_status: Annotated[TrainingStatus | None, Query(alias="status")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> TrainingJobsPublic:
    """Training jobs, newest first; of one model, in one status, when asked."""
    rows, count = service.list_jobs(session, model=model, status=job_status, limit=limit, offset=offset)
    return TrainingJobsPublic(data=[service.job_item(row) for row in rows], count=count)


@router.get("/training-jobs/{jobId}")
def get_training_job(session: SessionDep, job_id: JobId) -> TrainingJobPublic:
    """A training job: status, phase, leaderboard, error, the model version it made, and its times."""
    return service.job_public(service.get_job(session, job_id))


@router.post("/training-jobs/{jobId}/cancel")
def cancel_training_job(session: SessionDep, job_id: JobId) -> TrainingJobPublic:
    """Cancel a queued or running job (a running job's process is stopped)."""
    return service.job_public(service.cancel_job(session, job_id))
