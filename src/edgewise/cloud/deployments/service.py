"""Deployments: what a target (a thing or a thing group) should run, rolled out to its devices as a job.

A deployment is one revision of its target: creating one checks the target and every root component version,
builds the device-side document (docs/device-protocol.md) and creates a job in the ``aws-gg-deployment``
namespace that carries it, CONTINUOUS for a group so that things added later get it too. A new deployment to the
same target replaces the previous one: its job is cancelled (queued executions only; devices applying it finish)
and it becomes INACTIVE. Devices run the union of their thing's and their groups' latest deployments; that union
and its conflicts are the device's to resolve, as a Greengrass core device does.

A deployment's status comes from its job: ACTIVE while the job runs, COMPLETED when a snapshot job is done,
FAILED when the job's abort criteria stopped it, CANCELED when an operator cancelled it, INACTIVE once replaced.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.orm import Session

from edgewise.cloud.components import service as components
from edgewise.cloud.components.service import RESERVED_PREFIX
from edgewise.cloud.db import utcnow
from edgewise.cloud.deployments.aws_components import check_aws_components
from edgewise.cloud.deployments.models import Deployment
from edgewise.cloud.deployments.schemas import (
    ComponentDeploymentSpecification,
    DeploymentCreate,
    DeploymentStatus,
    RunWith,
)
from edgewise.cloud.errors import CloudConflictError, InvalidRequestError, NotFoundError
from edgewise.cloud.jobs import service as jobs
from edgewise.cloud.jobs import targets
from edgewise.cloud.jobs.models import Job, JobExecution, JobStatus, TargetSelection
from edgewise.cloud.jobs.schemas import JobCreate
from edgewise.cloud.jobs.secrets import SecretSealer
from edgewise.cloud.registry import Page
from edgewise.protocol import deployment as protocol

logger = logging.getLogger(__name__)

#: The jobs namespace Greengrass devices listen on for deployments.
DEPLOYMENT_NAMESPACE = "aws-gg-deployment"
DEPLOYMENT = "Deployment"
_JOB_ARN = "arn:aws:iot:edgewise:edgewise:job/{job_id}"
INACTIVE: DeploymentStatus = "INACTIVE"
CANCELED: DeploymentStatus = "CANCELED"


def job_arn(job_id: str) -> str:
    """The ARN a deployment's job is shown with."""
    return _JOB_ARN.format(job_id=job_id)


def target_arn(deployment: Deployment) -> str:
    """The ARN of the deployment's target."""
    return targets.Target(
        "thing" if deployment.target_kind == "thing" else "group", deployment.target_name
    ).arn


def _check_components(session: Session, request: DeploymentCreate) -> None:
    for name, specification in request.components.items():
        if name.startswith(RESERVED_PREFIX):
            continue  # a built-in, or an AWS component check_aws_components refused already
        try:
            components.get_component_version(session, name, specification.component_version)
        except (NotFoundError, InvalidRequestError) as exc:
            raise InvalidRequestError(f"components.{name}.componentVersion", str(exc)) from exc


def _device_run_with(run_with: RunWith) -> protocol.RunWith:
    limits = run_with.system_resource_limits
    return protocol.RunWith(
        posix_user=run_with.posix_user,
        windows_user=run_with.windows_user,
        system_resource_limits=None
        if limits is None
        else protocol.SystemResourceLimits(memory=limits.memory, cpus=limits.cpus),
    )


def _device_component(specification: ComponentDeploymentSpecification) -> protocol.ComponentSpecification:
    update = specification.configuration_update
    return protocol.ComponentSpecification(
        version=specification.component_version,
        configuration_update=None
        if update is None
        else protocol.ConfigurationUpdate(merge=update.merge, reset=tuple(update.reset)),
        run_with=None if specification.run_with is None else _device_run_with(specification.run_with),
    )


def device_document(
    request: DeploymentCreate,
    *,
    deployment_id: str,
    target: targets.Target,
    revision: int,
    created: datetime.datetime,
) -> dict[str, Any]:
    """The document a device applies (docs/device-protocol.md, "Deployments")."""
    policies = request.deployment_policies
    return protocol.build_document(
        protocol.FleetDeploymentDocument(
            schema_date=protocol.SCHEMA_DATE,
            deployment_id=deployment_id,
            deployment_name=request.deployment_name,
            configuration_arn=protocol.configuration_arn(
                "thing" if target.kind == "thing" else "thinggroup", target.name, revision
            ),
            creation_timestamp=int(created.timestamp() * 1000),
            components={name: _device_component(spec) for name, spec in request.components.items()},
            failure_handling_policy=policies.failure_handling_policy,
            component_update_policy=protocol.ComponentUpdatePolicy(
                action=policies.component_update_policy.action,
                timeout=policies.component_update_policy.timeout_in_seconds,
            ),
            configuration_validation_policy=protocol.ConfigurationValidationPolicy(
                timeout=policies.configuration_validation_policy.timeout_in_seconds
            ),
        )
    )


def _latest_for(session: Session, target: targets.Target) -> Deployment | None:
    return session.scalar(
        sa.select(Deployment).where(
            Deployment.target_kind == target.kind,
            Deployment.target_name == target.name,
            Deployment.is_latest_for_target.is_(True),
        )
    )


def _job(session: Session, deployment: Deployment) -> Job | None:
    return session.scalar(sa.select(Job).where(Job.job_id == deployment.job_id))


def _stop_job(session: Session, job: Job | None, *, comment: str) -> None:
    if job is not None and job.status is JobStatus.IN_PROGRESS:
        jobs.cancel_job(session, job.job_id, comment=comment)


def create_deployment(
    session: Session,
    request: DeploymentCreate,
    *,
    sealer: SecretSealer,
    now: datetime.datetime | None = None,
) -> Deployment:
    """Create a deployment and its job; the target's previous deployment becomes INACTIVE. Commits. Secret
    values (of ``aws.greengrass.SecretManager``) are stored sealed by ``sealer``, in the deployment and its job.

    Raises:
        InvalidRequestError: the target or a component version is malformed or not published, or a secret value
            is not a string (the redaction marker of an API view included).
        NotFoundError: the target does not exist.
    """
    now = now or utcnow()
    target = targets.resolve(session, "targetArn", request.target_arn)
    if not request.components:
        raise InvalidRequestError("components", "names no component; a deployment needs at least one")
    check_aws_components(session, request.components)
    _check_components(session, request)
    previous = _latest_for(session, target)
    revision = 1 + (
        session.scalar(
            sa.select(sa.func.max(Deployment.revision)).where(
                Deployment.target_kind == target.kind, Deployment.target_name == target.name
            )
        )
        or 0
    )
    deployment_id = str(uuid.uuid4())
    requested = sealer.seal_components(
        {
            name: specification.model_dump(by_alias=True, exclude_none=True, mode="json")
            for name, specification in request.components.items()
        },
        job_id=deployment_id,
    )
    document = device_document(
        request, deployment_id=deployment_id, target=target, revision=revision, created=now
    )
    iot_job = request.iot_job_configuration
    try:
        spec = JobCreate(
            job_id=deployment_id,
            targets=[target.arn],
            document=document,
            description=f"Deployment {request.deployment_name or deployment_id} (revision {revision} of {target.arn})",
            namespace_id=DEPLOYMENT_NAMESPACE,
            target_selection=TargetSelection.CONTINUOUS
            if target.kind == "group"
            else TargetSelection.SNAPSHOT,
            job_executions_rollout_config=iot_job.job_executions_rollout_config,
            abort_config=iot_job.abort_config,
            timeout_config=iot_job.timeout_config,
            job_executions_retry_config=iot_job.job_executions_retry_config,
        )
    except ValidationError as exc:
        # What the request holds is valid on its own; only the document built from it (its configuration
        # merges, mostly) can break a job's rules. The values are left out: they may be secrets.
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc']))} {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise InvalidRequestError(
            "components", f"the device document they make is refused: {problems}"
        ) from None
    if previous is not None:
        previous.is_latest_for_target = False
        previous.ended_as = previous.ended_as or INACTIVE
    deployment = Deployment(
        deployment_id=deployment_id,
        name=request.deployment_name,
        target_kind=target.kind,
        target_name=target.name,
        revision=revision,
        components=requested,
        deployment_policies=request.deployment_policies.model_dump(by_alias=True, mode="json"),
        iot_job_configuration=iot_job.model_dump(by_alias=True, exclude_none=True, mode="json"),
        document=sealer.seal(document, job_id=deployment_id),
        job_id=deployment_id,
        ended_as=None,
        is_latest_for_target=True,
        created_at=now,
    )
    session.add(deployment)
    session.flush()
    # create_job commits, and with it the deployment row and the previous one's demotion.
    jobs.create_job(session, spec, sealer=sealer, now=now)
    if previous is not None:
        _stop_job(session, _job(session, previous), comment=f"Replaced by deployment {deployment_id}")
    logger.info(
        "deployment-created",
        extra={"deployment": deployment_id, "target": target.arn, "revision": revision},
    )
    return deployment


def get_deployment(session: Session, deployment_id: str) -> Deployment:
    """The deployment ``deployment_id``.

    Raises:
        NotFoundError: there is none.
    """
    deployment = session.scalar(sa.select(Deployment).where(Deployment.deployment_id == deployment_id))
    if deployment is None:
        raise NotFoundError(DEPLOYMENT, deployment_id)
    return deployment


@dataclass(frozen=True)
class Progress:
    """A deployment's status and how many devices' executions are in each status."""

    status: DeploymentStatus
    counts: dict[str, int]


def progress(session: Session, deployment: Deployment) -> Progress:
    """Where ``deployment`` stands, from its job."""
    job = _job(session, deployment)
    counts = (
        {}
        if job is None
        else {status.value: n for status, n in jobs.process_details(session, job).items() if n}
    )
    if deployment.ended_as is not None:
        return Progress(CANCELED if deployment.ended_as == CANCELED else INACTIVE, counts)
    if job is None or job.status is JobStatus.DELETION_IN_PROGRESS:
        return Progress(INACTIVE, counts)
    if job.status is JobStatus.COMPLETED:
        return Progress("COMPLETED", counts)
    if job.status is JobStatus.CANCELED:
        return Progress("FAILED", counts)
    return Progress("ACTIVE", counts)


def list_deployments(
    session: Session,
    *,
    target: str | None = None,
    latest_only: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> Page[Deployment]:
    """Deployments, newest first; only those of ``target`` (a name or ARN), only the latest per target.

    Raises:
        InvalidRequestError: ``target`` is malformed.
        NotFoundError: ``target`` does not exist.
    """
    where: list[sa.ColumnElement[bool]] = []
    if target is not None:
        resolved = targets.resolve(session, "targetArn", target)
        where += [Deployment.target_kind == resolved.kind, Deployment.target_name == resolved.name]
    if latest_only:
        where.append(Deployment.is_latest_for_target.is_(True))
    total = session.scalar(sa.select(sa.func.count()).select_from(Deployment).where(*where)) or 0
    items = session.scalars(
        sa.select(Deployment)
        .where(*where)
        .order_by(Deployment.created_at.desc(), Deployment.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return Page(list(items), total)


def cancel_deployment(session: Session, deployment_id: str) -> Deployment:
    """Cancel a deployment: devices not yet notified never get it; devices applying it finish or roll back.
    Commits.

    Raises:
        NotFoundError: there is no such deployment.
        CloudConflictError: it already ended (completed, cancelled, failed or replaced).
    """
    deployment = get_deployment(session, deployment_id)
    status = progress(session, deployment).status
    if status != "ACTIVE":
        raise CloudConflictError(f"Deployment {deployment_id!r} is {status} and cannot be cancelled")
    deployment.ended_as = CANCELED
    session.flush()
    # cancel_job commits, and with it the deployment's new status.
    jobs.cancel_job(session, deployment.job_id, comment="Deployment cancelled")
    logger.info("deployment-cancelled", extra={"deployment": deployment_id})
    return deployment


def device_executions(
    session: Session, deployment_id: str, *, limit: int = 100, offset: int = 0
) -> Page[JobExecution]:
    """Every device's execution of the deployment (retries included), by thing.

    Raises:
        NotFoundError: there is no such deployment.
    """
    deployment = get_deployment(session, deployment_id)
    page = jobs.list_job_executions(session, deployment.job_id, limit=limit, offset=offset)
    return Page(page.items, page.total)


def _active_users(session: Session, name: str, version: str) -> list[str]:
    """Active deployments whose root components include ``name`` at ``version``."""
    users = []
    for deployment in session.scalars(sa.select(Deployment).where(Deployment.is_latest_for_target.is_(True))):
        specification = deployment.components.get(name)
        if specification is None or specification.get("componentVersion") != version:
            continue
        if progress(session, deployment).status == "ACTIVE":
            users.append(f"deployment {deployment.deployment_id!r} ({target_arn(deployment)})")
    return users


components.register_usage_check(_active_users)
