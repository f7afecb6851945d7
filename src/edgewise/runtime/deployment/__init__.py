"""Deployments: resolution, the component store, planning, apply with rollback, the deployment queue."""

from edgewise.protocol.deployment import ConfigurationUpdate
from edgewise.runtime.deployment.document import (
    LOCAL_GROUP,
    DeploymentDocument,
    FailureHandlingPolicy,
    parse_fleet_deployment,
    parse_local_deployment,
)
from edgewise.runtime.deployment.errors import DeploymentError, DocumentError, PackageError
from edgewise.runtime.deployment.history import DeploymentRecord, DeploymentStatus, DetailedStatus
from edgewise.runtime.deployment.service import DeploymentService

__all__ = [
    "LOCAL_GROUP",
    "ConfigurationUpdate",
    "DeploymentDocument",
    "DeploymentError",
    "DeploymentRecord",
    "DeploymentService",
    "DeploymentStatus",
    "DetailedStatus",
    "DocumentError",
    "FailureHandlingPolicy",
    "PackageError",
    "parse_fleet_deployment",
    "parse_local_deployment",
]
