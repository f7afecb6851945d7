"""MQTT messages as the cloud link sees them: topic, payload, QoS, retain and the MQTT 5 properties; and the
messages a connection announces itself with (its will and what it publishes on connecting)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MessageProperties:
    """The MQTT 5 publish properties Greengrass components can set and read."""

    user_properties: tuple[tuple[str, str], ...] = ()
    message_expiry_interval: int | None = None  #: seconds
    correlation_data: bytes | None = None
    response_topic: str | None = None
    payload_format: int | None = None  #: 0 unspecified bytes, 1 UTF-8 text
    content_type: str | None = None

    def to_json(self) -> str | None:
        """A compact JSON form for the spool; None when no property is set."""
        if self == _NO_PROPERTIES:
            return None
        body: dict[str, Any] = {}
        if self.user_properties:
            body["u"] = [list(pair) for pair in self.user_properties]
        if self.message_expiry_interval is not None:
            body["e"] = self.message_expiry_interval
        if self.correlation_data is not None:
            body["c"] = base64.b64encode(self.correlation_data).decode()
        if self.response_topic is not None:
            body["r"] = self.response_topic
        if self.payload_format is not None:
            body["f"] = self.payload_format
        if self.content_type is not None:
            body["t"] = self.content_type
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> MessageProperties:
        """The inverse of :meth:`to_json`. Raises ``ValueError`` (or ``KeyError``/``TypeError``) on bad text."""
        if text is None:
            return _NO_PROPERTIES
        body = json.loads(text)
        correlation = body.get("c")
        return cls(
            user_properties=tuple((str(key), str(value)) for key, value in body.get("u", ())),
            message_expiry_interval=body.get("e"),
            correlation_data=None if correlation is None else base64.b64decode(correlation, validate=True),
            response_topic=body.get("r"),
            payload_format=body.get("f"),
            content_type=body.get("t"),
        )


_NO_PROPERTIES = MessageProperties()


@dataclass(frozen=True, slots=True)
class CloudMessage:
    """One MQTT message, outgoing or received."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: MessageProperties = _NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class ConnectionMessages:
    """What one connection says about itself; the link asks for a fresh set before every connection attempt.

    ``will`` is the connection's MQTT last will: the broker publishes it when the connection drops without a
    clean DISCONNECT (and, with ``will_on_close``, also when the link is closed). ``on_connect`` is published
    right after each successful CONNACK, before anything spooled; it is not spooled itself (the next
    connection publishes its own).
    """

    will: CloudMessage | None = None
    on_connect: CloudMessage | None = None
    will_on_close: bool = False
