"""The local pub/sub IPC service: PublishToTopic and SubscribeToTopic over the runtime's bus.

A component needs an ``aws.greengrass.ipc.pubsub`` policy: the resource is the topic for a publish and the
filter string itself for a subscribe, where ``+`` and ``#`` are compared as literal characters (a policy
``test/#`` allows the filter ``test/#``, not ``test/x``); ``*`` in a policy matches anything.

Each event is encoded once per publish and shared by every IPC subscriber; it waits in the subscriber
stream's bounded queue, so a client that does not read loses its own events and slows nobody else. A
subscription ends with its stream: when the client closes it or disconnects.

Greengrass documents these operations at
https://docs.aws.amazon.com/greengrass/v2/developerguide/ipc-publish-subscribe.html.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from typing import Any

from edgewise.runtime.context import RuntimeContext
from edgewise.runtime.ipc.errors import InvalidArgumentsError
from edgewise.runtime.ipc.server import CallContext, EventStream, IpcServer
from edgewise.runtime.pubsub import PubSubMessage, ReceiveMode
from edgewise.topics import TopicError, validate_filter, validate_topic

SERVICE = "aws.greengrass.ipc.pubsub"
PUBLISH_TO_TOPIC = "aws.greengrass#PublishToTopic"
SUBSCRIBE_TO_TOPIC = "aws.greengrass#SubscribeToTopic"
SUBSCRIPTION_EVENT = "aws.greengrass#SubscriptionResponseMessage"

_RECEIVE_MODES = ", ".join(mode.value for mode in ReceiveMode)


def _topic(request: Mapping[str, Any]) -> str:
    topic = request.get("topic")
    if not isinstance(topic, str):
        raise InvalidArgumentsError(f"topic: expected a string, got {reprlib.repr(topic)}")
    return topic


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidArgumentsError(f"{field}: expected an object, got {reprlib.repr(value)}")
    return value


def _message(topic: str, request: Mapping[str, Any], source: str) -> PubSubMessage:
    """The message in ``publishMessage``: a JsonMessage or a BinaryMessage, not both."""
    publish_message = _object(request.get("publishMessage"), "publishMessage")
    json_message = publish_message.get("jsonMessage")
    binary_message = publish_message.get("binaryMessage")
    if (json_message is None) == (binary_message is None):
        raise InvalidArgumentsError(
            "publishMessage: expected exactly one of jsonMessage and binaryMessage, got "
            + ("both" if json_message is not None else "neither")
        )
    if json_message is not None:
        message = _object(json_message, "publishMessage.jsonMessage").get("message")
        if message is None:
            raise InvalidArgumentsError("publishMessage.jsonMessage.message: required")
        return PubSubMessage(topic, message, source)
    encoded = _object(binary_message, "publishMessage.binaryMessage").get("message")
    if not isinstance(encoded, str):
        raise InvalidArgumentsError(
            f"publishMessage.binaryMessage.message: expected a base64 string, got {reprlib.repr(encoded)}"
        )
    try:
        # Passed on as it came: subscribers get the same base64 text, with no decoding and re-encoding.
        return PubSubMessage.from_base64(topic, encoded, source)
    except ValueError:
        raise InvalidArgumentsError("publishMessage.binaryMessage.message: not valid base64") from None


def _receive_mode(request: Mapping[str, Any], topic_filter: str) -> ReceiveMode:
    value = request.get("receiveMode")
    if value is None:
        return ReceiveMode.default_for(topic_filter)
    try:
        return ReceiveMode(value)
    except ValueError:
        raise InvalidArgumentsError(
            f"receiveMode: expected one of {_RECEIVE_MODES}, got {reprlib.repr(value)}"
        ) from None


class PubSubService:
    """Registers PublishToTopic and SubscribeToTopic on an IPC server, backed by ``context.bus``."""

    def __init__(self, context: RuntimeContext) -> None:
        self._bus = context.bus
        self._authorizer = context.authorizer

    async def start(self) -> None:
        """Nothing runs in the background."""

    async def close(self) -> None:
        """Nothing to stop: subscriptions end with their streams."""

    def register(self, server: IpcServer) -> None:
        server.register_unary_nowait(PUBLISH_TO_TOPIC, self.publish_to_topic)
        server.register_stream(SUBSCRIBE_TO_TOPIC, self.subscribe_to_topic, event_shape=SUBSCRIPTION_EVENT)

    def publish_to_topic(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        # Never waits, so the server runs it as the request is decoded (no task per message), in the order
        # the client sent its publishes: its messages stay in order.
        topic = _topic(request)
        try:
            validate_topic(topic)
        except TopicError as exc:
            raise InvalidArgumentsError(str(exc)) from None
        message = _message(topic, request, context.component)
        self._authorizer.check(context.component, SERVICE, context.operation, topic)
        self._bus.publish_message(message)
        return {}

    async def subscribe_to_topic(
        self, context: CallContext, request: dict[str, Any], stream: EventStream
    ) -> dict[str, Any]:
        topic_filter = _topic(request)
        try:
            validate_filter(topic_filter)
        except TopicError as exc:
            raise InvalidArgumentsError(str(exc)) from None
        receive_mode = _receive_mode(request, topic_filter)
        self._authorizer.check(context.component, SERVICE, context.operation, topic_filter)

        def deliver(message: PubSubMessage) -> bool:
            return stream.send_encoded_nowait(message.event_json())

        subscription = self._bus.subscribe(
            topic_filter, deliver, receive_mode=receive_mode, subscriber=context.component
        )
        stream.on_close(subscription.unsubscribe)
        return {}
