"""The component lifecycle IPC operations: report a state, take part in component updates, pause and resume
other components.

``UpdateState``, ``SubscribeToComponentUpdates`` and ``DeferComponentUpdate`` need no policy;
``PauseComponent`` and ``ResumeComponent`` need an ``aws.greengrass.ipc.lifecycle`` policy whose resources
cover the target component's name.

Component updates join the deployment pipeline as a :class:`DeploymentHook`, called only for deployments
with ``componentUpdatePolicy.action`` NOTIFY_COMPONENTS: every subscriber gets a ``preUpdateEvent`` and may
answer with ``DeferComponentUpdate``. An answer with ``recheckAfterMs`` > 0 postpones the update; after the
longest such delay the subscribers are asked again. The deployment goes ahead once every subscriber answered
0, or once ``document.update_timeout`` has passed since the first event, whichever comes first. A successful
deployment then sends every subscriber a ``postUpdateEvent``.

Greengrass documents these operations at
https://docs.aws.amazon.com/greengrass/v2/developerguide/ipc-component-lifecycle.html.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from edgewise.runtime.context import RuntimeContext
from edgewise.runtime.deployment import DeploymentDocument
from edgewise.runtime.deployment.hooks import DeploymentHook
from edgewise.runtime.ipc.catalog import STREAM_EVENT_SHAPES
from edgewise.runtime.ipc.errors import (
    InvalidArgumentsError,
    ResourceNotFoundError,
    ServiceError,
)
from edgewise.runtime.ipc.server import CallContext, EventStream, IpcServer
from edgewise.runtime.lifecycle import ComponentNotSupervisedError, ComponentState, LifecycleError

logger = logging.getLogger(__name__)

SERVICE = "aws.greengrass.ipc.lifecycle"
_OP = "aws.greengrass#"
_REPORTABLE = ("RUNNING", "ERRORED")


def _string(request: Mapping[str, Any], field: str) -> str:
    value = request.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidArgumentsError(f"{field}: expected a non-empty string, got {value!r}")
    return value


class _UpdateRound:
    """One round of ``preUpdateEvent``: who was asked, who has not answered, the longest deferral."""

    def __init__(self, deployment_id: str, asked: set[str]) -> None:
        self.deployment_id = deployment_id
        self.asked = frozenset(asked)
        self.unanswered = set(asked)
        self.defer_ms = 0
        self.answered = asyncio.Event()

    def answer(self, component: str, defer_ms: int) -> None:
        self.defer_ms = max(self.defer_ms, defer_ms)
        self.unanswered.discard(component)
        if not self.unanswered:
            self.answered.set()


class LifecycleService(DeploymentHook):
    """Registers the lifecycle operations, and lets subscribed components defer deployments."""

    def __init__(self, context: RuntimeContext) -> None:
        self._supervisor = context.supervisor
        self._deployments = context.deployments
        self._authorizer = context.authorizer
        self._update_streams: dict[str, list[EventStream]] = {}
        self._round: _UpdateRound | None = None

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
        self._deployments.add_hook(self)

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
        component = context.component
        self._update_streams.setdefault(component, []).append(stream)
        stream.on_close(lambda: self._forget_subscriber(component, stream))
        return {}

    def _forget_subscriber(self, component: str, stream: EventStream) -> None:
        streams = self._update_streams.get(component, [])
        if stream in streams:
            streams.remove(stream)
        if streams:
            return
        self._update_streams.pop(component, None)
        # Nobody is left to answer for the component: it no longer holds the update back.
        if self._round is not None and component in self._round.unanswered:
            self._round.answer(component, 0)

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
        if not self._update_streams.get(component):
            raise InvalidArgumentsError(
                f"Component {component} is not subscribed to component updates; "
                "call SubscribeToComponentUpdates first"
            )
        update = self._round
        if update is None or update.deployment_id != deployment_id or component not in update.asked:
            raise ServiceError(
                f"No update of deployment {deployment_id} is waiting for {component}: the time limit to "
                "defer it has passed, or it was never announced"
            )
        if recheck:
            logger.info(
                "Component %s defers deployment %s by %d ms: %s",
                component,
                deployment_id,
                recheck,
                message or "no reason given",
            )
        update.answer(component, recheck)
        return {}

    async def before_update(self, document: DeploymentDocument) -> None:
        """Announce the update and wait as the subscribers ask, at most ``document.update_timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + document.update_timeout
        while True:
            defer_s = await self._ask(document.deployment_id, deadline) / 1000
            if defer_s <= 0:
                return
            if loop.time() + defer_s >= deadline:
                logger.warning(
                    "Deployment %s: components defer it past its %.1f s update timeout; going ahead then",
                    document.deployment_id,
                    document.update_timeout,
                )
                await asyncio.sleep(max(deadline - loop.time(), 0.0))
                return
            await asyncio.sleep(defer_s)

    async def _ask(self, deployment_id: str, deadline: float) -> int:
        """Send one round of ``preUpdateEvent``; the longest deferral asked for, 0 to go ahead."""
        event = {"preUpdateEvent": {"deploymentId": deployment_id, "isGgcRestarting": False}}
        asked = {
            component
            for component, streams in self._update_streams.items()
            if any([stream.send_nowait(event) for stream in streams])
        }
        if not asked:
            return 0
        update = self._round = _UpdateRound(deployment_id, asked)
        try:
            async with asyncio.timeout_at(deadline):
                await update.answered.wait()
        except TimeoutError:
            logger.warning(
                "Deployment %s: no answer to the update event from %s within its update timeout; going ahead",
                deployment_id,
                ", ".join(sorted(update.unanswered)),
            )
            return 0
        finally:
            self._round = None
        return update.defer_ms

    async def after_update(self, document: DeploymentDocument) -> None:
        """Tell every subscriber that the update is done."""
        event = {"postUpdateEvent": {"deploymentId": document.deployment_id}}
        for streams in self._update_streams.values():
            for stream in streams:
                stream.send_nowait(event)
