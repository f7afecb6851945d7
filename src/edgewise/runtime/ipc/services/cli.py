"""The ``aws.greengrass.Cli`` IPC service: list, inspect, restart and stop components; local deployments.

Request and response shapes are those of ``awsiot.greengrasscoreipc.model``, documented at
https://docs.aws.amazon.com/greengrass/v2/developerguide/ipc-local-deployments-components.html.
A component needs an ``accessControl`` policy for ``aws.greengrass.Cli`` to call these; the ``edgewise``
CLI's own token is allowed everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgewise.runtime.context import RuntimeContext
from edgewise.runtime.deployment import (
    DeploymentRecord,
    DocumentError,
    parse_local_deployment,
)
from edgewise.runtime.ipc.errors import InvalidArgumentsError, ResourceNotFoundError
from edgewise.runtime.ipc.server import CallContext, IpcServer

SERVICE = "aws.greengrass.Cli"
_OP = "aws.greengrass#"


def _string(request: Mapping[str, Any], field: str) -> str:
    value = request.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidArgumentsError(f"{field}: expected a non-empty string, got {value!r}")
    return value


def deployment_json(record: DeploymentRecord) -> dict[str, Any]:
    """A deployment record as the IPC ``LocalDeployment`` shape."""
    details: dict[str, Any] = {}
    if record.detailed_status is not None:
        details["detailedDeploymentStatus"] = record.detailed_status.value
    if record.failure_cause:
        details["deploymentFailureCause"] = record.failure_cause
        details["deploymentErrorStack"] = list(record.error_stack)
        details["deploymentErrorTypes"] = list(record.error_types)
    shape: dict[str, Any] = {
        "deploymentId": record.deployment_id,
        "status": record.status.value,
        "createdOn": str(record.created_ms),
    }
    if details:
        shape["deploymentStatusDetails"] = details
    return shape


class CliService:
    """Registers the CLI operations on an IPC server."""

    def __init__(self, context: RuntimeContext) -> None:
        self._supervisor = context.supervisor
        self._deployments = context.deployments
        self._configuration_of = context.configuration_of
        self._store = context.store
        self._authorizer = context.authorizer

    async def start(self) -> None:
        """Nothing runs in the background."""

    async def close(self) -> None:
        """Nothing to stop."""

    def register(self, server: IpcServer) -> None:
        server.register_unary(_OP + "ListComponents", self.list_components)
        server.register_unary(_OP + "GetComponentDetails", self.get_component_details)
        server.register_unary(_OP + "RestartComponent", self.restart_component)
        server.register_unary(_OP + "StopComponent", self.stop_component)
        server.register_unary(_OP + "CreateLocalDeployment", self.create_local_deployment)
        server.register_unary(_OP + "GetLocalDeploymentStatus", self.get_local_deployment_status)
        server.register_unary(_OP + "ListLocalDeployments", self.list_local_deployments)
        server.register_unary(_OP + "CancelLocalDeployment", self.cancel_local_deployment)

    def _authorize(self, context: CallContext, resource: str) -> None:
        self._authorizer.check(context.component, SERVICE, context.operation, resource)

    def _details(self, name: str) -> dict[str, Any]:
        status = self._supervisor.status(name)
        if status is None:
            raise ResourceNotFoundError("Component", name, f"Component {name} not found")
        config = self._configuration_of(name)
        details: dict[str, Any] = {
            "componentName": name,
            "version": status.version,
            "state": status.state.value,
            "configuration": config if isinstance(config, dict) else {},
        }
        # A built-in serves a deployment's older version of its major line; say what was asked as well.
        requested = self._store.get(("services", name, "requestedVersion"))
        if isinstance(requested, str):
            details["requestedVersion"] = requested
        return details

    async def list_components(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        self._authorize(context, "*")
        return {"components": [self._details(name) for name in sorted(self._supervisor.states())]}

    async def get_component_details(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        name = _string(request, "componentName")
        self._authorize(context, name)
        return {"componentDetails": self._details(name)}

    async def restart_component(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        name = _string(request, "componentName")
        self._authorize(context, name)
        self._details(name)
        await self._supervisor.restart(name)
        return {"restartStatus": "SUCCEEDED", "message": f"Component {name} is restarting"}

    async def stop_component(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        name = _string(request, "componentName")
        self._authorize(context, name)
        self._details(name)
        await self._supervisor.stop(name)
        return {"stopStatus": "SUCCEEDED", "message": f"Component {name} stopped"}

    async def create_local_deployment(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        self._authorize(context, "*")
        try:
            document = parse_local_deployment(request)
        except DocumentError as exc:
            raise InvalidArgumentsError(str(exc)) from exc
        record = self._deployments.submit(document)
        return {"deploymentId": record.deployment_id}

    def _record(self, request: Mapping[str, Any]) -> DeploymentRecord:
        deployment_id = _string(request, "deploymentId")
        record = self._deployments.get(deployment_id)
        if record is None:
            raise ResourceNotFoundError(
                "LocalDeployment", deployment_id, f"Deployment {deployment_id} not found"
            )
        return record

    async def get_local_deployment_status(
        self, context: CallContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        self._authorize(context, str(request.get("deploymentId", "*")))
        return {"deployment": deployment_json(self._record(request))}

    async def list_local_deployments(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        self._authorize(context, "*")
        return {"localDeployments": [deployment_json(record) for record in self._deployments.list()]}

    async def cancel_local_deployment(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        record = self._record(request)
        self._authorize(context, record.deployment_id)
        return {"message": self._deployments.cancel(record.deployment_id)}
