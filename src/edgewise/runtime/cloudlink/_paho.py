"""Translation between our message types and paho-mqtt's (the one place that knows paho's property names)."""

from __future__ import annotations

import socket
from typing import Any

from paho.mqtt.client import MQTTMessage
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgewise.runtime.cloudlink._message import CloudMessage, MessageProperties


def no_delay(client: Any, userdata: Any, sock: Any) -> None:
    """paho's ``on_socket_open``: send each packet at once, so that a small message never waits for the
    broker's delayed ACK of the previous one (Nagle's algorithm, about 40 ms)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _new(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]  # paho leaves this one unannotated


def publish_properties(
    properties: MessageProperties, packet_type: int = PacketTypes.PUBLISH
) -> Properties | None:
    """paho PUBLISH (or, with ``packet_type`` WILLMESSAGE, will) properties; None when there are none."""
    if properties == MessageProperties():
        return None
    paho = _new(packet_type)
    for pair in properties.user_properties:
        paho.UserProperty = pair
    if properties.message_expiry_interval is not None:
        paho.MessageExpiryInterval = properties.message_expiry_interval
    if properties.correlation_data is not None:
        paho.CorrelationData = properties.correlation_data
    if properties.response_topic is not None:
        paho.ResponseTopic = properties.response_topic
    if properties.payload_format is not None:
        paho.PayloadFormatIndicator = properties.payload_format
    if properties.content_type is not None:
        paho.ContentType = properties.content_type
    return paho


def subscribe_properties(identifier: int | None) -> Properties | None:
    """SUBSCRIBE properties carrying a subscription identifier (when the broker supports them)."""
    if identifier is None:
        return None
    paho = _new(PacketTypes.SUBSCRIBE)
    paho.SubscriptionIdentifier = identifier
    return paho


def connect_properties(session_expiry: int) -> Properties:
    paho = _new(PacketTypes.CONNECT)
    paho.SessionExpiryInterval = session_expiry
    return paho


def property_of(properties: Properties | None, name: str, default: Any = None) -> Any:
    """A property by its paho name (``ReceiveMaximum``), or ``default`` when absent."""
    return default if properties is None else getattr(properties, name, default)


def received_message(paho: MQTTMessage) -> tuple[CloudMessage, list[int]]:
    """A received message and the subscription identifiers it came with (empty when none).

    Raises ``UnicodeDecodeError`` for a topic that is not UTF-8.
    """
    properties = paho.properties
    pairs = property_of(properties, "UserProperty", [])
    correlation = property_of(properties, "CorrelationData")
    message = CloudMessage(
        topic=paho.topic,
        payload=bytes(paho.payload),
        qos=paho.qos,
        retain=bool(paho.retain),
        properties=MessageProperties(
            user_properties=tuple((str(key), str(value)) for key, value in pairs),
            message_expiry_interval=property_of(properties, "MessageExpiryInterval"),
            correlation_data=None if correlation is None else bytes(correlation),
            response_topic=property_of(properties, "ResponseTopic"),
            payload_format=property_of(properties, "PayloadFormatIndicator"),
            content_type=property_of(properties, "ContentType"),
        ),
    )
    return message, list(property_of(properties, "SubscriptionIdentifier", []))
