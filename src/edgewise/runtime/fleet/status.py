"""Fleet status: when the device sends the Greengrass fleet status messages of :mod:`edgewise.protocol.health`,
and what they say.

When, and what:

- ``NUCLEUS_LAUNCH`` when the agent starts, and ``CADENCE`` every ``statusIntervalSeconds``: COMPLETE (every
  component);
- ``COMPONENT_STATUS_CHANGE`` when components reach RUNNING, FINISHED, ERRORED or BROKEN: PARTIAL (the
  components that changed), debounced so a burst of changes makes one message; held back while a fleet
  deployment applies, whose own message covers them;
- ``THING_DEPLOYMENT`` / ``THING_GROUP_DEPLOYMENT`` after each fleet deployment, with ``deploymentInformation``,
  and ``RECONNECT`` on every connection after the first (at most one a minute): COMPLETE, so that a cloud that
  replaces its view on COMPLETE also forgets the components a deployment removed.

Messages go out at QoS 1 through the cloud link's spool: those made offline arrive after reconnecting, in order,
and ``sequenceNumber`` and ``timestamp`` (milliseconds) order them. A message over 128,000 bytes is split into
chunks that share ``sequenceNumber`` and carry ``chunkInfo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from edgewise import GREENGRASS_COMPATIBILITY_VERSION
from edgewise.protocol import health
from edgewise.protocol.health import ComponentHealth, HealthMessage, MessageType, OverallStatus, Trigger
from edgewise.recipe import ComponentType
from edgewise.runtime.cloudlink import CloudLinkError
from edgewise.runtime.deployment import GROUPS, SERVICES
from edgewise.runtime.lifecycle import ComponentState, ComponentStatus

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink
    from edgewise.runtime.config import ConfigStore
    from edgewise.runtime.lifecycle import LifecycleSupervisor

logger = logging.getLogger(__name__)

RECONNECT_INTERVAL_SECONDS = 60.0
#: States whose arrival is reported (transient ones are not).
REPORTED_STATES = frozenset(
    {ComponentState.RUNNING, ComponentState.FINISHED, ComponentState.ERRORED, ComponentState.BROKEN}
)
_ERROR_CODES = {
    ComponentState.NEW: "INSTALL_ERROR",
    ComponentState.INSTALLED: "STARTUP_ERROR",
    ComponentState.STARTING: "STARTUP_ERROR",
    ComponentState.RUNNING: "RUN_ERROR",
    ComponentState.STOPPING: "SHUTDOWN_ERROR",
}


def _status_details(status: ComponentStatus | None) -> dict[str, Any]:
    """``componentStatusDetails`` of an ERRORED or BROKEN component."""
    if status is None:
        return health.component_status_details([], "")
    codes = sorted({_ERROR_CODES.get(state, f"{state.value}_ERROR") for state in status.error_counts})
    return health.component_status_details(codes, status.last_failure or "")


def component_health(
    services: Mapping[str, Any],
    groups: Mapping[str, Mapping[str, str]],
    group_arns: Mapping[str, str],
    supervisor: LifecycleSupervisor,
) -> list[ComponentHealth]:
    """The ``components`` of a COMPLETE message: every service in the store, by name."""
    entries = []
    for name in sorted(services):
        service = services[name] if isinstance(services[name], Mapping) else {}
        builtin = service.get("componentType") == ComponentType.NUCLEUS.value
        state = ComponentState.RUNNING if builtin else supervisor.state(name) or ComponentState.NEW
        member_of = sorted(group for group, roots in groups.items() if name in roots)
        requested = service.get("requestedVersion")
        entries.append(
            ComponentHealth(
                name=name,
                version=str(service.get("version", "")),
                fleet_config_arns=tuple(group_arns[group] for group in member_of if group in group_arns),
                is_root=bool(member_of),
                status=state.value,
                # A built-in serves an older version of its major line that a deployment asked for: report both.
                requested_version=requested if isinstance(requested, str) else None,
                status_details=(
                    _status_details(supervisor.status(name))
                    if state in (ComponentState.ERRORED, ComponentState.BROKEN)
                    else None
                ),
            )
        )
    return entries


class FleetStatusReporter:
    """Publishes fleet status messages. Create, :meth:`start`, :meth:`close`; call from the event loop."""

    def __init__(
        self,
        link: CloudLink,
        *,
        thing: str,
        platform: Mapping[str, str],
        store: ConfigStore,
        supervisor: LifecycleSupervisor,
        group_arns: Callable[[], Mapping[str, str]],
        interval: float,
        debounce: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._link = link
        self._thing = thing
        self._platform = dict(platform)
        self._store = store
        self._supervisor = supervisor
        self._group_arns = group_arns
        self._interval = interval
        self._debounce = debounce
        self._clock = clock
        self._sequence = 0
        self._changed: set[str] = set()
        self._held = False
        self._timer: asyncio.TimerHandle | None = None
        self._queue: asyncio.Queue[tuple[Trigger, dict[str, Any] | None, frozenset[str] | None]] = (
            asyncio.Queue()
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: list[Callable[[], None]] = []
        self._seen_connection = False
        self._last_reconnect_message = -RECONNECT_INTERVAL_SECONDS

    async def start(self) -> None:
        """Publish the launch message and start following component states, the connection and the cadence."""
        loop = asyncio.get_running_loop()
        self._seen_connection = self._link.connected
        self._unsubscribe.append(self._supervisor.subscribe(self._state_changed))
        self._unsubscribe.append(self._link.add_status_listener(self._connection_changed))
        self._queue.put_nowait((Trigger.NUCLEUS_LAUNCH, None, None))
        self._tasks.append(loop.create_task(self._publisher(), name="fleet-status-publisher"))
        self._tasks.append(loop.create_task(self._cadence(), name="fleet-status-cadence"))

    async def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self._timer is not None:
            self._timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- triggers ---------------------------------------------------------------------------------------

    def hold(self) -> None:
        """A fleet deployment starts applying: keep component changes for its own message."""
        self._held = True

    def release(self) -> None:
        """Report component changes again (a fleet deployment was abandoned); any kept are sent now."""
        self._held = False
        if self._changed and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(0, self._flush)

    def deployment_finished(self, group: str | None, information: Mapping[str, Any] | None) -> None:
        """A fleet deployment ended (or was cancelled): send a COMPLETE message, with its result if any."""
        self._held = False
        self._changed.clear()
        self._queue.put_nowait((Trigger.for_group(group), dict(information) if information else None, None))

    def _state_changed(self, name: str, old: ComponentState, new: ComponentState) -> None:
        if new not in REPORTED_STATES:
            return
        self._changed.add(name)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._debounce, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if self._held or not self._changed:
            return
        names, self._changed = frozenset(self._changed), set()
        self._queue.put_nowait((Trigger.COMPONENT_STATUS_CHANGE, None, names))

    def _connection_changed(self, connected: bool) -> None:
        if not connected:
            return
        if not self._seen_connection:
            self._seen_connection = True  # the launch message is on its way with this first connection
            return
        now = time.monotonic()
        if now - self._last_reconnect_message >= RECONNECT_INTERVAL_SECONDS:
            self._last_reconnect_message = now
            self._queue.put_nowait((Trigger.RECONNECT, None, None))

    async def _cadence(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self._queue.put_nowait((Trigger.CADENCE, None, None))

    # -- publishing -------------------------------------------------------------------------------------

    async def _publisher(self) -> None:
        while True:
            trigger, deployment, names = await self._queue.get()
            try:
                await self.publish(trigger, deployment=deployment, names=names)
            except CloudLinkError as exc:
                logger.warning("Fleet status message (%s) not sent: %s", trigger.value, exc)

    def message(
        self,
        trigger: Trigger,
        *,
        deployment: Mapping[str, Any] | None = None,
        names: Collection[str] | None = None,
    ) -> list[bytes]:
        """The payload(s) of one message: COMPLETE unless ``names`` limits it to some components."""
        services: Mapping[str, Any] = self._store.get(SERVICES) or {}
        groups: Mapping[str, Mapping[str, str]] = self._store.get(GROUPS) or {}
        everything = component_health(services, groups, self._group_arns(), self._supervisor)
        components = everything if names is None else [entry for entry in everything if entry.name in names]
        broken = any(entry.status == ComponentState.BROKEN.value for entry in everything)
        self._sequence += 1
        return health.encode_health(
            HealthMessage(
                core_version=GREENGRASS_COMPATIBILITY_VERSION,
                platform=self._platform.get("os", ""),
                architecture=self._platform.get("architecture", ""),
                runtime=health.RUNTIME,
                thing=self._thing,
                sequence_number=self._sequence,
                timestamp=int(self._clock() * 1000),
                message_type=MessageType.COMPLETE if names is None else MessageType.PARTIAL,
                trigger=trigger,
                overall_status=OverallStatus.UNHEALTHY if broken else OverallStatus.HEALTHY,
                deployment=deployment,
                components=tuple(components),
            )
        )

    async def publish(
        self,
        trigger: Trigger,
        *,
        deployment: Mapping[str, Any] | None = None,
        names: Collection[str] | None = None,
    ) -> None:
        """Build and publish one message (QoS 1, spooled while offline)."""
        payloads = self.message(trigger, deployment=deployment, names=names)
        for payload in payloads:
            await self._link.publish(health.health_topic(self._thing), payload, qos=1)
        logger.info("Fleet status %s published (%d byte(s))", trigger.value, sum(map(len, payloads)))
