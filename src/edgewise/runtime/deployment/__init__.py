"""Deployments: one pipeline for local and fleet deployments (resolve, prepare, validate, notify and defer,
activate, confirm or roll back), the component store, the deployment queue and its history.

Other packages import from here only: the documents and their parsers, the service and its records, the hook
interface the runtime's services attach with, the component source interface the fleet agent implements (and
what an implementation needs: the component store, a cancellation-safe thread runner), and the store keys of
the stored tree.
"""

from edgewise.protocol.deployment import ConfigurationUpdate
from edgewise.runtime.deployment.activation import GROUPS, SERVICES
from edgewise.runtime.deployment.deferral import ComponentUpdateDeferral, UpdateNotPendingError
from edgewise.runtime.deployment.document import (
    LOCAL_GROUP,
    DeploymentDocument,
    FailureHandlingPolicy,
    parse_fleet_deployment,
    parse_local_deployment,
)
from edgewise.runtime.deployment.errors import DeploymentError, DocumentError, PackageError
from edgewise.runtime.deployment.history import DeploymentRecord, DeploymentStatus, DetailedStatus
from edgewise.runtime.deployment.hooks import DeploymentHook
from edgewise.runtime.deployment.packages import ComponentStore, file_digest
from edgewise.runtime.deployment.service import DeploymentService
from edgewise.runtime.deployment.sources import ComponentSource, Offer, run_to_completion
from edgewise.runtime.deployment.validation import ConfigurationValidation, ValidationNotPendingError

__all__ = [
    "GROUPS",
    "LOCAL_GROUP",
    "SERVICES",
    "ComponentSource",
    "ComponentStore",
    "ComponentUpdateDeferral",
    "ConfigurationUpdate",
    "ConfigurationValidation",
    "DeploymentDocument",
    "DeploymentError",
    "DeploymentHook",
    "DeploymentRecord",
    "DeploymentService",
    "DeploymentStatus",
    "DetailedStatus",
    "DocumentError",
    "FailureHandlingPolicy",
    "Offer",
    "PackageError",
    "UpdateNotPendingError",
    "ValidationNotPendingError",
    "file_digest",
    "parse_fleet_deployment",
    "parse_local_deployment",
    "run_to_completion",
]
