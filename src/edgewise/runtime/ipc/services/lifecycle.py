"""The component lifecycle IPC operations: report a state, take part in component updates, pause and resume
other components.

``UpdateState``, ``SubscribeToComponentUpdates`` and ``DeferComponentUpdate`` need no policy;
``PauseComponent`` and ``ResumeComponent`` need an ``aws.greengrass.ipc.lifecycle`` policy whose resources
cover the target component's name.

Component updates are the deployment pipeline's notify-and-defer stage
(:mod:`edgewise.runtime.deployment.deferral`, which the kernel attaches): this service subscribes event
streams to it and hands it ``DeferComponentUpdate`` answers (``recheckAfterMs`` > 0 postpones the update).

Greengrass documents these operations at
https://docs.aws.amazon.com/greengrass/v2/developerguide/ipc-component-lifecycle.html.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgewise.runtime.context import RuntimeContext
from edgewise.runtime.deployment import UpdateNotPendingError
from edgewise.runtime.ipc.catalog import STREAM_EVENT_SHAPES
from edgewise.runtime.ipc.errors import (
    InvalidArgumentsError,
    ResourceNotFoundError,
    ServiceError,
)
from edgewise.runtime.ipc.server import CallContext, EventStream, IpcServer
from edgewise.runtime.lifecycle import ComponentNotSupervisedError, ComponentState, LifecycleError

SERVICE = "aws.greengrass.ipc.lifecycle"
_OP = "aws.greengrass#"
_REPORTABLE = ("RUNNING", "ERRORED")


def _string(request: Mapping[str, Any], field: str) -> str:
    value = request.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidArgumentsError(f"{field}: expected a non-empty string, got {value!r}")
    return value


class LifecycleService:
    """Registers the lifecycle operations; component updates go to the pipeline's deferral stage."""

    def __init__(self, context: RuntimeContext) -> None:
        self._supervisor = context.supervisor
        self._deferral = context.deferral
        self._authorizer = context.authorizer

    def register(self, server: IpcServer) -> None:
        server.register_unary(_OP + "UpdateState", self.update_state)
        server.register_unary(_OP + "DeferComponentUpdate", self.defer_component_update)
        server.register_unary(_OP + "PauseComponent", self.pause_component)
        server.register_unary(_OP + "ResumeComponent", self.resume_component)
        operation = _OP + "SubscribeToComponentUpdates"
        server.register_stream(
            operation, self.subscribe_to_component_updates, event_shape=STREAM_EVENT_SHAPES[operation]
        )

    async def start(self) -> None:
        """Nothing runs in the background."""

    async def close(self) -> None:
        """Nothing to stop: streams end with their connections."""

    # -- state -----------------------------------------------------------------------------------------

    async def update_state(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        state = request.get("state")
        if state not in _REPORTABLE:
            raise InvalidArgumentsError(f"state: expected RUNNING or ERRORED, got {state!r}")
        if self._supervisor.status(context.component) is None:
            raise ResourceNotFoundError(
                "Component", context.component, f"Component {context.component} is not running"
            )
        # A report the state machine does not accept (see ACCEPTED_REPORTS) is ignored, as Greengrass does.
        self._supervisor.report_state(context.component, ComponentState(state))
        return {}

    # -- pause and resume ------------------------------------------------------------------------------

    async def pause_component(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        name = self._authorized_target(context, request)
        try:
            self._supervisor.pause(name)
        except ComponentNotSupervisedError as exc:
            raise ResourceNotFoundError("Component", name, f"Component {name} not found") from exc
        except LifecycleError as exc:
            raise InvalidArgumentsError(str(exc)) from exc
        return {}

    async def resume_component(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        name = self._authorized_target(context, request)
        try:
            self._supervisor.resume(name)
        except ComponentNotSupervisedError as exc:
            raise ResourceNotFoundError("Component", name, f"Component {name} not found") from exc
        except LifecycleError as exc:
            raise InvalidArgumentsError(str(exc)) from exc
        return {}

    def _authorized_target(self, context: CallContext, request: Mapping[str, Any]) -> str:
        name = _string(request, "componentName")
        self._authorizer.check(context.component, SERVICE, context.operation, name)
        return name

    # -- component updates -----------------------------------------------------------------------------

    async def subscribe_to_component_updates(
        self, context: CallContext, request: dict[str, Any], stream: EventStream
    ) -> dict[str, Any]:
        stream.on_close(self._deferral.subscribe(context.component, stream.send_nowait))
        return {}

    async def defer_component_update(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        component = context.component
        deployment_id = _string(request, "deploymentId")
        message = request.get("message")
        if message is not None and not isinstance(message, str):
            raise InvalidArgumentsError(f"message: expected a string, got {message!r}")
        recheck = request.get("recheckAfterMs")
        if recheck is None:
            recheck = 0
        if isinstance(recheck, bool) or not isinstance(recheck, int) or recheck < 0:
            raise InvalidArgumentsError(f"recheckAfterMs: expected an integer >= 0, got {recheck!r}")
        if not self._deferral.is_subscribed(component):
            raise InvalidArgumentsError(
                f"Component {component} is not subscribed to component updates; "
                "call SubscribeToComponentUpdates first"
            )
        try:
            self._deferral.defer(component, deployment_id, recheck, message)
        except UpdateNotPendingError as exc:
            raise ServiceError(str(exc)) from exc
        return {}
