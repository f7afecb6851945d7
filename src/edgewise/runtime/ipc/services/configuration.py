"""The component configuration IPC operations: read, update, watch and validate.

No ``accessControl`` policy is needed: any component may read or watch any component's configuration, and
may change only its own (never its ``accessControl``). Configuration lives in the store at
``services.<component>.configuration``; the kernel reacts to changes (restarting components whose lifecycle
uses them, rewriting ``effective.yaml``).

Validation is the deployment pipeline's validate stage (:mod:`edgewise.runtime.deployment.validation`, which
the kernel attaches): this service subscribes the event streams of
``SubscribeToValidateConfigurationUpdates`` to it and hands it ``SendConfigurationValidityReport`` reports.

Greengrass documents these operations at
https://docs.aws.amazon.com/greengrass/v2/developerguide/ipc-component-configuration.html.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

from edgewise.runtime.config import ConfigChange, ConfigError, ConfigPath, StaleUpdateError
from edgewise.runtime.context import RuntimeContext
from edgewise.runtime.deployment import ValidationNotPendingError
from edgewise.runtime.ipc.catalog import STREAM_EVENT_SHAPES
from edgewise.runtime.ipc.errors import (
    FailedUpdateConditionCheckError,
    InvalidArgumentsError,
    ResourceNotFoundError,
)
from edgewise.runtime.ipc.server import CallContext, EventStream, IpcServer

_OP = "aws.greengrass#"
ACCESS_CONTROL = "accessControl"
#: The last second of year 9999: later timestamps are a client bug, not a time.
_MAX_TIMESTAMP_S = 253_402_300_799


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _key_path(request: Mapping[str, Any]) -> tuple[str, ...]:
    value = request.get("keyPath")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidArgumentsError(f"keyPath: expected a list of strings, got {_kind(value)}")
    for index, key in enumerate(value):
        if not isinstance(key, str) or not key:
            raise InvalidArgumentsError(f"keyPath[{index}]: expected a non-empty string, got {key!r}")
    return tuple(value)


def _component_name(request: Mapping[str, Any], caller: str) -> str:
    value = request.get("componentName")
    if value is None:
        return caller
    if not isinstance(value, str) or not value:
        raise InvalidArgumentsError(f"componentName: expected a non-empty string, got {value!r}")
    return value


def _timestamp_ms(request: Mapping[str, Any]) -> int:
    value = request.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentsError(
            f"timestamp: expected a number of seconds since the epoch, got {_kind(value)}"
        )
    if not math.isfinite(value) or not 0 <= value <= _MAX_TIMESTAMP_S:
        raise InvalidArgumentsError(f"timestamp: {value!r} is not a time in seconds since the epoch")
    return int(value * 1000)


def configuration_path(component: str, key_path: tuple[str, ...] = ()) -> ConfigPath:
    """Where a component's configuration (or a key in it) lives in the store."""
    return ("services", component, "configuration", *key_path)


class ConfigurationService:
    """Registers the configuration operations; validation goes to the pipeline's validate stage."""

    def __init__(self, context: RuntimeContext) -> None:
        self._store = context.store
        self._validation = context.validation

    def register(self, server: IpcServer) -> None:
        server.register_unary(_OP + "GetConfiguration", self.get_configuration)
        server.register_unary(_OP + "UpdateConfiguration", self.update_configuration)
        server.register_unary(
            _OP + "SendConfigurationValidityReport", self.send_configuration_validity_report
        )
        for operation, handler in (
            ("SubscribeToConfigurationUpdate", self.subscribe_to_configuration_update),
            ("SubscribeToValidateConfigurationUpdates", self.subscribe_to_validate_configuration_updates),
        ):
            server.register_stream(_OP + operation, handler, event_shape=STREAM_EVENT_SHAPES[_OP + operation])

    async def start(self) -> None:
        """Nothing runs in the background."""

    async def close(self) -> None:
        """Nothing to stop: streams end with their connections."""

    def _check_component(self, name: str) -> None:
        if not self._store.contains(("services", name)):
            raise ResourceNotFoundError("Component", name, f"Component {name} not found")

    # -- read and update -------------------------------------------------------------------------------

    async def get_configuration(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        name = _component_name(request, context.component)
        key_path = _key_path(request)
        self._check_component(name)
        path = configuration_path(name, key_path)
        if key_path and not self._store.contains(path):
            raise ResourceNotFoundError(
                "Configuration",
                "/".join(key_path),
                f"Key {list(key_path)} not found in the configuration of {name}",
            )
        value = self._store.get(path)
        if key_path and not isinstance(value, dict):
            value = {key_path[-1]: value}
        return {"componentName": name, "value": value if isinstance(value, dict) else {}}

    async def update_configuration(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        key_path = _key_path(request)
        timestamp = _timestamp_ms(request)
        value = request.get("valueToMerge")
        if not isinstance(value, dict):
            raise InvalidArgumentsError(f"valueToMerge: expected an object, got {_kind(value)}")
        if key_path[:1] == (ACCESS_CONTROL,) or (not key_path and ACCESS_CONTROL in value):
            raise InvalidArgumentsError(
                f"Component {context.component} cannot change its {ACCESS_CONTROL} configuration over IPC; "
                "deploy it instead"
            )
        self._check_component(context.component)
        try:
            # On the event loop: the kernel's change subscriber must run there.
            self._store.merge(
                configuration_path(context.component, key_path), value, timestamp=timestamp, strict=True
            )
        except StaleUpdateError as exc:
            raise FailedUpdateConditionCheckError(str(exc)) from exc
        except ConfigError as exc:
            raise InvalidArgumentsError(f"valueToMerge: {exc}") from exc
        return {}

    # -- watch -----------------------------------------------------------------------------------------

    async def subscribe_to_configuration_update(
        self, context: CallContext, request: dict[str, Any], stream: EventStream
    ) -> dict[str, Any]:
        name = _component_name(request, context.component)
        key_path = _key_path(request)
        self._check_component(name)
        base = configuration_path(name)
        send = _loop_sender(stream)

        def changed(change: ConfigChange) -> None:
            relative = change.path[len(base) :] if change.path[: len(base)] == base else ()
            # A change above the watched key (the whole configuration replaced) is reported at the key.
            if len(relative) < len(key_path):
                relative = key_path
            send({"configurationUpdateEvent": {"componentName": name, "keyPath": list(relative)}})

        stream.on_close(self._store.subscribe(base + key_path, changed))
        return {}

    # -- validate --------------------------------------------------------------------------------------

    async def subscribe_to_validate_configuration_updates(
        self, context: CallContext, request: dict[str, Any], stream: EventStream
    ) -> dict[str, Any]:
        stream.on_close(self._validation.subscribe(context.component, stream.send_nowait))
        return {}

    async def send_configuration_validity_report(
        self, context: CallContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        report = request.get("configurationValidityReport")
        where = "configurationValidityReport"
        if not isinstance(report, dict):
            raise InvalidArgumentsError(f"{where}: expected an object, got {_kind(report)}")
        status = report.get("status")
        if status not in ("ACCEPTED", "REJECTED"):
            raise InvalidArgumentsError(f"{where}.status: expected ACCEPTED or REJECTED, got {status!r}")
        deployment_id = report.get("deploymentId")
        if not isinstance(deployment_id, str) or not deployment_id:
            raise InvalidArgumentsError(
                f"{where}.deploymentId: expected a non-empty string, got {deployment_id!r}"
            )
        message = report.get("message")
        if message is not None and not isinstance(message, str):
            raise InvalidArgumentsError(f"{where}.message: expected a string, got {_kind(message)}")
        try:
            self._validation.report(
                context.component, deployment_id, accepted=status == "ACCEPTED", message=message or ""
            )
        except ValidationNotPendingError as exc:
            raise InvalidArgumentsError(str(exc)) from exc
        return {}


def _loop_sender(stream: EventStream) -> Callable[[Mapping[str, Any]], None]:
    """``stream.send_nowait`` callable from any thread (store callbacks run on the thread that changed it)."""
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()

    def send(event: Mapping[str, Any]) -> None:
        if threading.get_ident() == loop_thread:
            stream.send_nowait(event)
        else:
            loop.call_soon_threadsafe(stream.send_nowait, event)

    return send
