"""A message on the local bus, and how a subscriber chooses whether it hears its own component."""

from __future__ import annotations

import base64
import enum

from edgewise.runtime.ipc import jsoncodec
from edgewise.topics import has_wildcards


class ReceiveMode(enum.StrEnum):
    """Whether a subscription also receives what its own component publishes (IPC ``receiveMode``)."""

    #: Every matching message, the subscriber component's own included.
    RECEIVE_ALL_MESSAGES = "RECEIVE_ALL_MESSAGES"
    #: Matching messages published by anyone but the subscriber's component.
    RECEIVE_MESSAGES_FROM_OTHERS = "RECEIVE_MESSAGES_FROM_OTHERS"

    @property
    def hears_itself(self) -> bool:
        """True when the subscriber receives messages its own component published."""
        return self is ReceiveMode.RECEIVE_ALL_MESSAGES

    @classmethod
    def default_for(cls, topic_filter: str) -> ReceiveMode:
        """Greengrass's default: all messages for a plain topic, others' only for a filter with wildcards."""
        if has_wildcards(topic_filter):
            return cls.RECEIVE_MESSAGES_FROM_OTHERS
        return cls.RECEIVE_ALL_MESSAGES


_BASE64_DIGITS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def is_base64(text: str) -> bool:
    """True when ``text`` is padded standard base64, as a strict decoder accepts it (checked without decoding)."""
    if len(text) % 4 or not text.isascii():
        return False
    data = text.encode("ascii")
    digits = data.rstrip(b"=")
    return len(data) - len(digits) <= 2 and not digits.translate(None, _BASE64_DIGITS)


class PubSubMessage:
    """One published message, as every subscriber sees it; subscribers must not modify it.

    ``payload`` is ``bytes`` for a binary message, otherwise the JSON value that was published.
    """

    __slots__ = ("_base64", "_event", "_payload", "source", "topic")

    def __init__(self, topic: str, payload: object, source: str | None) -> None:
        self.topic = topic
        self._payload = bytes(payload) if isinstance(payload, bytearray | memoryview) else payload
        #: The component that published it, or None for the runtime itself.
        self.source = source
        self._base64: str | None = None
        self._event: bytes | None = None

    @classmethod
    def from_base64(cls, topic: str, encoded: str, source: str | None) -> PubSubMessage:
        """A binary message given as base64, as IPC clients send it: IPC subscribers get that same text,
        and it is only decoded for a subscriber that reads :attr:`payload`.

        Raises:
            ValueError: ``encoded`` is not padded standard base64.
        """
        if not is_base64(encoded):
            msg = f"Message published on {topic!r} is not valid base64"
            raise ValueError(msg)
        message = cls(topic, None, source)
        message._base64 = encoded
        return message

    @property
    def payload(self) -> object:
        """The bytes of a binary message, or the JSON value of a JSON message."""
        if self._base64 is not None and self._payload is None:
            self._payload = base64.b64decode(self._base64)
        return self._payload

    @property
    def is_binary(self) -> bool:
        """True for a binary message, False for a JSON one."""
        return self._base64 is not None or isinstance(self._payload, bytes)

    def event_json(self) -> bytes:
        """The message as an IPC ``SubscriptionResponseMessage``, JSON-encoded once for all its receivers.

        Raises:
            TypeError: the payload is neither bytes nor a JSON-serializable value.
        """
        if self._event is None:
            context = {"topic": self.topic}
            event: dict[str, object]
            if self.is_binary:
                encoded = self._base64
                if encoded is None:
                    assert isinstance(self._payload, bytes)
                    encoded = base64.b64encode(self._payload).decode("ascii")
                event = {"binaryMessage": {"message": encoded, "context": context}}
            else:
                event = {"jsonMessage": {"message": self._payload, "context": context}}
            try:
                self._event = jsoncodec.dumps(event)
            except (TypeError, ValueError) as exc:
                msg = f"Message published on {self.topic!r} is neither bytes nor a JSON value: {exc}"
                raise TypeError(msg) from None
        return self._event

    def __repr__(self) -> str:
        kind = "binary" if self.is_binary else "JSON"
        return f"PubSubMessage({self.topic!r}, {kind}, source={self.source!r})"
