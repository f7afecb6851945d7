"""What an HTTPS publish request asks for: ``POST /topics/<url-encoded topic>?qos=0|1&retain=true|false``.

:func:`parse_publish_target` reads the method and request target into a :class:`PublishRequest`, or raises the
error the request is answered with. The topic follows AWS IoT Core's rules for topic names: UTF-8, at most
256 bytes and 7 slashes, no wildcard, no NUL. ``qos`` defaults to 0 and ``retain`` to false, as in AWS's
Publish API; its MQTT 5 parameters (``contentType``, ``responseTopic``, ``messageExpiry``) are refused by name
rather than dropped, since the message would leave without them. Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, unquote

from edgewise.cloud.https_publish.errors import (
    InvalidPublishRequestError,
    PublishMethodNotAllowedError,
    PublishTargetNotFoundError,
)
from edgewise.topics import TopicError, validate_topic

PATH_PREFIX: Final = "/topics/"
#: AWS IoT Core's limits on a topic name.
MAX_TOPIC_BYTES: Final = 256
MAX_TOPIC_SLASHES: Final = 7
#: A request target longer than this cannot name a valid topic even with every byte percent-encoded.
MAX_TARGET_LENGTH: Final = 4096
_QUERY_PARAMETERS: Final = ("qos", "retain")
_UNSUPPORTED_PARAMETERS: Final = ("contentType", "responseTopic", "messageExpiry")
_BOOLEANS: Final = {"true": True, "false": False}


@dataclass(frozen=True)
class PublishRequest:
    """A publish request whose target is valid: the topic, its QoS and whether the broker retains it."""

    topic: str
    qos: int = 0
    retain: bool = False


def parse_publish_target(method: str, target: str) -> PublishRequest:
    """The publish request that ``method`` on ``target`` (the request line's target, as sent) asks for.

    Raises:
        PublishTargetNotFoundError: the path is not ``/topics/<topic>``.
        PublishMethodNotAllowedError: the method is not POST.
        InvalidPublishRequestError: the topic or a query parameter is invalid; the message names it.
    """
    if len(target) > MAX_TARGET_LENGTH:
        raise InvalidPublishRequestError("target", f"longer than {MAX_TARGET_LENGTH} characters")
    path, _, query = target.partition("?")
    if not path.startswith(PATH_PREFIX):
        raise PublishTargetNotFoundError(f"No such resource: {path[:100]!r}; publish to /topics/<topic>")
    if method != "POST":
        raise PublishMethodNotAllowedError(f"Method {method[:20]!r} is not allowed; publish with POST")
    topic = _topic(path[len(PATH_PREFIX) :])
    parameters = _query(query)
    return PublishRequest(
        topic=topic,
        qos=_qos(parameters.get("qos", "0")),
        retain=_retain(parameters.get("retain", "false")),
    )


def _topic(encoded: str) -> str:
    try:
        topic = unquote(encoded, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidPublishRequestError("topic", "its percent-encoded bytes are not UTF-8") from None
    try:
        validate_topic(topic)
    except TopicError as exc:
        raise InvalidPublishRequestError("topic", str(exc).removeprefix("topic: ")) from None
    size = len(topic.encode("utf-8"))
    if size > MAX_TOPIC_BYTES:
        raise InvalidPublishRequestError("topic", f"{size} bytes long; a topic has at most {MAX_TOPIC_BYTES}")
    slashes = topic.count("/")
    if slashes > MAX_TOPIC_SLASHES:
        raise InvalidPublishRequestError(
            "topic", f"{slashes} slashes; a topic has at most {MAX_TOPIC_SLASHES} ({topic[:60]!r}...)"
        )
    return topic


def _query(query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(
            query, keep_blank_values=True, strict_parsing=bool(query), errors="strict", max_num_fields=8
        )
    except (ValueError, UnicodeDecodeError):
        raise InvalidPublishRequestError("query", f"{query[:100]!r} is not a query string") from None
    parameters: dict[str, str] = {}
    for name, value in pairs:
        if name in _UNSUPPORTED_PARAMETERS:
            raise InvalidPublishRequestError(name, "MQTT 5 message properties are not supported over HTTPS")
        if name not in _QUERY_PARAMETERS:
            raise InvalidPublishRequestError(name[:60], "unknown query parameter; use qos and retain")
        if name in parameters:
            raise InvalidPublishRequestError(name, "given more than once")
        parameters[name] = value
    return parameters


def _qos(value: str) -> int:
    if value not in ("0", "1"):
        raise InvalidPublishRequestError("qos", f"{value[:20]!r} is not a QoS; use 0 or 1")
    return int(value)


def _retain(value: str) -> bool:
    retain = _BOOLEANS.get(value.lower())
    if retain is None:
        raise InvalidPublishRequestError("retain", f"{value[:20]!r} is not a boolean; use true or false")
    return retain
