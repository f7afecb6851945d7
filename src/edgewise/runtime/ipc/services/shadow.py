"""The ``aws.greengrass.ShadowManager`` IPC service: GetThingShadow, UpdateThingShadow, DeleteThingShadow and
ListNamedShadowsForThing on the device's local shadows.

A component needs an ``aws.greengrass.ShadowManager`` policy. The resource is ``$aws/things/<thing>/shadow``
for a classic shadow, ``$aws/things/<thing>/shadow/name/<shadow>`` for a named one, and the thing name for
ListNamedShadowsForThing. Shadow errors map to Greengrass shapes: 400 and 413 to InvalidArgumentsError, 404 to
ResourceNotFoundError, 409 to ConflictError. The shadows live in ``ROOT/shadows/shadows.db``; the document size
limit is the ShadowManager component's ``shadowDocumentSizeLimitBytes`` (8192 by default, at most 30720). The
service also owns the cloud sync of the shadows the component's ``synchronize`` names
(:mod:`edgewise.runtime.shadow.sync`).

Greengrass documents these operations at
https://docs.aws.amazon.com/greengrass/v2/developerguide/ipc-local-shadows.html.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from typing import Any

from edgewise.runtime.context import RuntimeContext
from edgewise.runtime.ipc.errors import (
    ConflictError,
    InvalidArgumentsError,
    ModeledError,
    ResourceNotFoundError,
    ServiceError,
)
from edgewise.runtime.ipc.server import CallContext, IpcServer
from edgewise.runtime.shadow import (
    DEFAULT_SIZE_LIMIT,
    MAX_SIZE_LIMIT,
    InvalidShadowRequestError,
    PayloadTooLargeError,
    ShadowError,
    ShadowNotFoundError,
    ShadowService,
    ShadowVersionConflictError,
    encode_document,
    topic_prefix,
    validate_shadow_name,
    validate_thing_name,
)
from edgewise.runtime.shadow.sync import ShadowSyncComponent

logger = logging.getLogger(__name__)

SERVICE = "aws.greengrass.ShadowManager"
_OP = "aws.greengrass#"
SIZE_LIMIT_KEY = "shadowDocumentSizeLimitBytes"


def _ipc_error(error: ShadowError) -> ModeledError:
    """The Greengrass error shape of a shadow error (the one place shadow errors are translated)."""
    if isinstance(error, ShadowNotFoundError):
        name = error.shadow_name or error.thing_name
        return ResourceNotFoundError("Shadow", name, error.message)
    if isinstance(error, ShadowVersionConflictError):
        return ConflictError(error.message)
    if isinstance(error, (InvalidShadowRequestError, PayloadTooLargeError)):
        return InvalidArgumentsError(error.message)
    return ServiceError(error.message)


def _names(request: Mapping[str, Any]) -> tuple[str, str]:
    try:
        return validate_thing_name(request.get("thingName")), validate_shadow_name(request.get("shadowName"))
    except ShadowError as exc:
        raise _ipc_error(exc) from None


def _payload(request: Mapping[str, Any]) -> bytes:
    encoded = request.get("payload")
    if not isinstance(encoded, str):
        raise InvalidArgumentsError(f"payload: expected a base64 string, got {type(encoded).__name__}")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgumentsError(f"payload: not valid base64 ({exc})") from None


def _encode(document: Mapping[str, Any]) -> dict[str, Any]:
    return {"payload": base64.b64encode(encode_document(document)).decode("ascii")}


class ShadowManagerService:
    """Registers the shadow operations and owns the local shadow store."""

    def __init__(self, context: RuntimeContext) -> None:
        self._authorizer = context.authorizer
        self._configuration_of = context.configuration_of
        bus = context.bus
        self._shadows = ShadowService(
            context.paths.root / "shadows" / "shadows.db",
            publish=lambda topic, payload: bus.publish(topic, payload, source=SERVICE),
            size_limit=self._size_limit,
        )
        self._warned_limit: object = None
        #: Syncs the shadows the component's ``synchronize`` names with the cloud (docs/runtime.md).
        self.sync = ShadowSyncComponent(
            context.store, self._shadows, cloud=context.cloud, thing=context.settings.thing_name
        )

    async def start(self) -> None:
        await self._shadows.open()
        await self.sync.start()

    async def close(self) -> None:
        await self.sync.close()
        await self._shadows.close()

    def register(self, server: IpcServer) -> None:
        server.register_unary(_OP + "GetThingShadow", self.get_thing_shadow)
        server.register_unary(_OP + "UpdateThingShadow", self.update_thing_shadow)
        server.register_unary(_OP + "DeleteThingShadow", self.delete_thing_shadow)
        server.register_unary(_OP + "ListNamedShadowsForThing", self.list_named_shadows_for_thing)

    def _size_limit(self) -> int:
        config = self._configuration_of(SERVICE)
        value = config.get(SIZE_LIMIT_KEY) if isinstance(config, Mapping) else None
        if value is None:
            return DEFAULT_SIZE_LIMIT
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SIZE_LIMIT:
            return value
        if value != self._warned_limit:
            self._warned_limit = value
            logger.warning(
                "%s.%s is %r; expected an integer from 1 to %d, using %d",
                SERVICE,
                SIZE_LIMIT_KEY,
                value,
                MAX_SIZE_LIMIT,
                DEFAULT_SIZE_LIMIT,
            )
        return DEFAULT_SIZE_LIMIT

    def _authorize(self, context: CallContext, thing_name: str, shadow_name: str) -> None:
        resource = topic_prefix(thing_name, shadow_name)
        self._authorizer.check(context.component, SERVICE, context.operation, resource)

    async def get_thing_shadow(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        thing_name, shadow_name = _names(request)
        self._authorize(context, thing_name, shadow_name)
        try:
            return _encode(await self._shadows.get_shadow(thing_name, shadow_name))
        except ShadowError as exc:
            raise _ipc_error(exc) from None

    async def update_thing_shadow(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        thing_name, shadow_name = _names(request)
        self._authorize(context, thing_name, shadow_name)
        payload = _payload(request)
        try:
            return _encode(await self._shadows.update_shadow(thing_name, shadow_name, payload))
        except ShadowError as exc:
            raise _ipc_error(exc) from None

    async def delete_thing_shadow(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        thing_name, shadow_name = _names(request)
        self._authorize(context, thing_name, shadow_name)
        try:
            return _encode(await self._shadows.delete_shadow(thing_name, shadow_name))
        except ShadowError as exc:
            raise _ipc_error(exc) from None

    async def list_named_shadows_for_thing(
        self, context: CallContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            thing_name = validate_thing_name(request.get("thingName"))
        except ShadowError as exc:
            raise _ipc_error(exc) from None
        self._authorizer.check(context.component, SERVICE, context.operation, thing_name)
        token = request.get("nextToken")
        if token is not None and not isinstance(token, str):
            raise InvalidArgumentsError(f"nextToken: expected a string, got {type(token).__name__}")
        try:
            page = await self._shadows.list_named_shadows(
                thing_name, next_token=token or None, page_size=request.get("pageSize")
            )
        except ShadowError as exc:
            raise _ipc_error(exc) from None
        response: dict[str, Any] = {"results": page.names, "timestamp": page.timestamp}
        if page.next_token is not None:
            response["nextToken"] = page.next_token
        return response
