"""REST routes of deployments (Greengrass CreateDeployment, GetDeployment, ListDeployments, CancelDeployment;
reads: any role; writes: operator)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from sqlalchemy.orm import Session

from edgewise.cloud.auth import require_access
from edgewise.cloud.db import SessionDep
from edgewise.cloud.deployments import service
from edgewise.cloud.deployments.models import Deployment
from edgewise.cloud.deployments.schemas import (
    DeploymentCreate,
    DeploymentCreated,
    DeploymentPublic,
    DeploymentsPublic,
    DeviceDeploymentPublic,
    DeviceDeploymentsPublic,
)
from edgewise.cloud.errors import ERROR_RESPONSES
from edgewise.cloud.jobs import secrets

DeploymentId = Annotated[
    str, Path(alias="deploymentId", min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
]
TargetFilter = Annotated[str | None, Query(alias="targetArn", min_length=1, max_length=2048)]
HistoryFilter = Annotated[str, Query(alias="historyFilter", pattern="^(ALL|LATEST_ONLY)$")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]

router = APIRouter(dependencies=[Depends(require_access())], responses=ERROR_RESPONSES, tags=["deployments"])


def deployment_public(session: Session, deployment: Deployment) -> DeploymentPublic:
    """The API shape of ``deployment``, with its job's progress."""
    progress = service.progress(session, deployment)
    return DeploymentPublic(
        deployment_id=deployment.deployment_id,
        deployment_name=deployment.name,
        target_arn=service.target_arn(deployment),
        revision_id=str(deployment.revision),
        deployment_status=progress.status,
        iot_job_id=deployment.job_id,
        iot_job_arn=service.job_arn(deployment.job_id),
        components=secrets.redact_components(deployment.components),
        deployment_policies=deployment.deployment_policies,
        iot_job_configuration=deployment.iot_job_configuration,
        creation_timestamp=deployment.created_at,
        is_latest_for_target=deployment.is_latest_for_target,
        execution_counts=progress.counts,
    )


@router.post("/deployments", status_code=status.HTTP_201_CREATED)
def create_deployment(
    session: SessionDep, sealer: secrets.SealerDep, request: DeploymentCreate
) -> DeploymentCreated:
    """Deploy components to a thing or thing group; replaces the target's previous deployment."""
    deployment = service.create_deployment(session, request, sealer=sealer)
    return DeploymentCreated(
        deployment_id=deployment.deployment_id,
        iot_job_id=deployment.job_id,
        iot_job_arn=service.job_arn(deployment.job_id),
    )


@router.get("/deployments")
def list_deployments(
    session: SessionDep,
    target: TargetFilter = None,
    history: HistoryFilter = "ALL",
    limit: Limit = 100,
    offset: Offset = 0,
) -> DeploymentsPublic:
    """Deployments, newest first; filter by target, or keep only each target's latest."""
    page = service.list_deployments(
        session, target=target, latest_only=history == "LATEST_ONLY", limit=limit, offset=offset
    )
    return DeploymentsPublic(data=[deployment_public(session, item) for item in page.items], count=page.total)


@router.get("/deployments/{deploymentId}")
def get_deployment(session: SessionDep, deployment_id: DeploymentId) -> DeploymentPublic:
    """One deployment and how its devices are doing."""
    return deployment_public(session, service.get_deployment(session, deployment_id))


@router.post("/deployments/{deploymentId}/cancel")
def cancel_deployment(session: SessionDep, deployment_id: DeploymentId) -> DeploymentPublic:
    """Cancel a deployment: devices not yet notified never get it; devices applying it finish or roll back."""
    return deployment_public(session, service.cancel_deployment(session, deployment_id))


@router.get("/deployments/{deploymentId}/devices")
def list_device_deployments(
    session: SessionDep, deployment_id: DeploymentId, limit: Limit = 100, offset: Offset = 0
) -> DeviceDeploymentsPublic:
    """Each device's execution of the deployment, with the status details it reported."""
    page = service.device_executions(session, deployment_id, limit=limit, offset=offset)
    return DeviceDeploymentsPublic(
        data=[
            DeviceDeploymentPublic(
                thing_name=execution.thing_name,
                execution_number=execution.execution_number,
                status=execution.status.value,
                status_details=execution.status_details,
                queued_at=execution.queued_at,
                started_at=execution.started_at,
                last_updated_at=execution.last_updated_at,
            )
            for execution in page.items
        ],
        count=page.total,
    )
