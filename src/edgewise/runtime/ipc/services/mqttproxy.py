"""The ``aws.greengrass.ipc.mqttproxy`` IPC service: PublishToIoTCore, SubscribeToIoTCore and
SubscribeToIoTCoreConnectionStatus, carried by the runtime's cloud link.

Publish and subscribe need an ``accessControl`` policy for ``aws.greengrass.ipc.mqttproxy`` whose resources
match the topic MQTT-style (``+``/``#`` in policies are wildcards here). Topics follow AWS IoT Core's limits:
at most 256 bytes and 7 slashes (reserved ``$aws/`` topics may have more). Subscribing to the connection status
needs no policy. Without a cloud link (no ``cloud`` section in the runtime configuration) every operation
answers ServiceError, before any other check.

Greengrass documents these operations at
https://docs.aws.amazon.com/greengrass/v2/developerguide/ipc-iot-core-mqtt.html.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edgewise.runtime.cloudlink import (
    CloudLinkError,
    CloudMessage,
    MessageProperties,
    MessageTooLargeError,
)
from edgewise.runtime.context import RuntimeContext

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink
from edgewise.runtime.ipc.errors import NAMESPACE, InvalidArgumentsError, ServiceError
from edgewise.runtime.ipc.server import CallContext, EventStream, IpcServer
from edgewise.topics import TopicError, validate_filter, validate_topic

SERVICE = "aws.greengrass.ipc.mqttproxy"
#: AWS IoT Core's topic limits, which Greengrass applies to PublishToIoTCore and SubscribeToIoTCore.
MAX_TOPIC_BYTES = 256
MAX_TOPIC_SLASHES = 7
_RESERVED_PREFIX = "$aws/"
_MAX_EXPIRY = 2**32 - 1
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def check_iot_topic(field: str, value: Any, *, is_filter: bool) -> str:
    """``value`` as an IoT Core topic name (or filter).

    Raises:
        InvalidArgumentsError: naming ``field`` and the problem.
    """
    if not isinstance(value, str) or not value:
        raise InvalidArgumentsError(f"{field}: expected a non-empty topic string, got {value!r}")
    try:
        (validate_filter if is_filter else validate_topic)(value)
    except TopicError as exc:
        raise InvalidArgumentsError(f"{field}: {str(exc).partition(': ')[2]}") from None
    size = len(value.encode())
    if size > MAX_TOPIC_BYTES:
        raise InvalidArgumentsError(
            f"{field}: {size} bytes, more than AWS IoT Core's limit of {MAX_TOPIC_BYTES}"
        )
    slashes = value.count("/")
    if slashes > MAX_TOPIC_SLASHES and not value.startswith(_RESERVED_PREFIX):
        raise InvalidArgumentsError(
            f"{field}: {value!r} has {slashes} slashes, more than AWS IoT Core's limit of {MAX_TOPIC_SLASHES}"
        )
    return value


def _qos(request: Mapping[str, Any]) -> int:
    value = request.get("qos")
    if value in ("0", "1", 0, 1) and not isinstance(value, bool):
        return int(value)
    raise InvalidArgumentsError(f'qos: expected "0" (AT_MOST_ONCE) or "1" (AT_LEAST_ONCE), got {value!r}')


def _blob(request: Mapping[str, Any], field: str) -> bytes | None:
    value = request.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentsError(f"{field}: expected a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgumentsError(f"{field}: not valid base64") from None


def _optional(request: Mapping[str, Any], field: str, kind: type, description: str) -> Any:
    value = request.get(field)
    if value is not None and type(value) is not kind:  # exact: JSON gives no subclasses, and True is no int
        raise InvalidArgumentsError(f"{field}: expected {description}, got {value!r}")
    return value


def _user_properties(request: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    value = request.get("userProperties")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidArgumentsError(f"userProperties: expected a list of {{key, value}}, got {value!r}")
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InvalidArgumentsError(f"userProperties[{index}]: expected {{key, value}}, got {item!r}")
        key, text = item.get("key"), item.get("value")
        if not isinstance(key, str) or not isinstance(text, str):
            raise InvalidArgumentsError(
                f"userProperties[{index}]: key and value must be strings, got {item!r}"
            )
        pairs.append((key, text))
    return tuple(pairs)


def _properties(request: Mapping[str, Any]) -> MessageProperties:
    expiry = _optional(request, "messageExpiryIntervalSeconds", int, "an integer of seconds")
    if expiry is not None and not 0 <= expiry <= _MAX_EXPIRY:
        raise InvalidArgumentsError(f"messageExpiryIntervalSeconds: expected 0-{_MAX_EXPIRY}, got {expiry}")
    response_topic = request.get("responseTopic")
    if response_topic is not None:
        check_iot_topic("responseTopic", response_topic, is_filter=False)
    payload_format = request.get("payloadFormat")
    if payload_format not in (None, "0", "1"):
        raise InvalidArgumentsError(
            f'payloadFormat: expected "0" (BYTES) or "1" (UTF8), got {payload_format!r}'
        )
    return MessageProperties(
        user_properties=_user_properties(request),
        message_expiry_interval=expiry,
        correlation_data=_blob(request, "correlationData"),
        response_topic=response_topic,
        payload_format=None if payload_format is None else int(payload_format),
        content_type=_optional(request, "contentType", str, "a string"),
    )


def message_json(message: CloudMessage) -> dict[str, Any]:
    """A received message as the IPC ``MQTTMessage`` shape."""
    properties = message.properties
    body: dict[str, Any] = {
        "topicName": message.topic,
        "payload": base64.b64encode(message.payload).decode(),
        "retain": message.retain,
    }
    if properties.user_properties:
        body["userProperties"] = [{"key": key, "value": value} for key, value in properties.user_properties]
    if properties.message_expiry_interval is not None:
        body["messageExpiryIntervalSeconds"] = properties.message_expiry_interval
    if properties.correlation_data is not None:
        body["correlationData"] = base64.b64encode(properties.correlation_data).decode()
    if properties.response_topic is not None:
        body["responseTopic"] = properties.response_topic
    if properties.payload_format is not None:
        body["payloadFormat"] = str(properties.payload_format)
    if properties.content_type is not None:
        body["contentType"] = properties.content_type
    return body


class MqttProxyService:
    """Registers the IoT Core operations on an IPC server."""

    def __init__(self, context: RuntimeContext) -> None:
        self._cloud: CloudLink | None = context.cloud
        self._authorizer = context.authorizer
        self._last_encoded: tuple[CloudMessage, bytes] | None = None

    async def start(self) -> None:
        """Nothing runs in the background: the kernel owns the cloud link."""

    async def close(self) -> None:
        """Nothing to stop: subscriptions end with their streams."""

    def register(self, server: IpcServer) -> None:
        server.register_unary(NAMESPACE + "PublishToIoTCore", self.publish_to_iot_core)
        server.register_stream(
            NAMESPACE + "SubscribeToIoTCore",
            self.subscribe_to_iot_core,
            event_shape=NAMESPACE + "IoTCoreMessage",
        )
        server.register_stream(
            NAMESPACE + "SubscribeToIoTCoreConnectionStatus",
            self.subscribe_to_connection_status,
            event_shape=NAMESPACE + "IoTCoreConnectionStatusEvent",
        )

    def _link(self, context: CallContext) -> CloudLink:
        # Checked first: without a link the operation is unavailable, like an operation whose plugin is absent.
        if self._cloud is None:
            raise ServiceError(
                f"Operation {context.operation} is not supported here: no cloud connection is configured "
                "(start the runtime with --config FILE that has a 'cloud' section)"
            )
        return self._cloud

    def _encoded(self, message: CloudMessage) -> bytes:
        # The link hands one message to every matching stream in turn: encode it once for all of them.
        last = self._last_encoded
        if last is not None and last[0] is message:
            return last[1]
        encoded = _encode_json({"message": message_json(message)}).encode()
        self._last_encoded = (message, encoded)
        return encoded

    async def publish_to_iot_core(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        link = self._link(context)
        topic = check_iot_topic("topicName", request.get("topicName"), is_filter=False)
        qos = _qos(request)
        payload = _blob(request, "payload") or b""
        retain = _optional(request, "retain", bool, "true or false") or False
        properties = _properties(request)
        self._authorizer.check(context.component, SERVICE, context.operation, topic, mqtt=True)
        try:
            await link.publish(topic, payload, qos, retain=retain, properties=properties)
        except MessageTooLargeError as exc:
            raise InvalidArgumentsError(str(exc)) from exc
        except CloudLinkError as exc:
            raise ServiceError(str(exc)) from exc
        return {}

    async def subscribe_to_iot_core(
        self, context: CallContext, request: dict[str, Any], stream: EventStream
    ) -> dict[str, Any]:
        link = self._link(context)
        topic_filter = check_iot_topic("topicName", request.get("topicName"), is_filter=True)
        qos = _qos(request)
        self._authorizer.check(context.component, SERVICE, context.operation, topic_filter, mqtt=True)

        def forward(message: CloudMessage) -> None:
            stream.send_encoded_nowait(self._encoded(message))

        try:
            subscription = await link.subscribe(topic_filter, forward, qos=qos)
        except CloudLinkError as exc:  # refused by the broker, too many filters, link closed
            raise ServiceError(str(exc)) from exc
        # Runs at once if the client went away while the broker was answering.
        stream.on_close(subscription.unsubscribe)
        return {}

    async def subscribe_to_connection_status(
        self, context: CallContext, request: dict[str, Any], stream: EventStream
    ) -> dict[str, Any]:
        link = self._link(context)

        def send(connected: bool) -> None:
            stream.send_nowait(
                {"connectionStatusEvent": {"status": "CONNECTED" if connected else "DISCONNECTED"}}
            )

        stream.on_close(link.add_status_listener(send))
        send(link.connected)  # held back until the initial response is out
        return {}
