"""The MQTT bridge's configuration, in the keys of Greengrass's ``aws.greengrass.clientdevices.mqtt.Bridge``.

A deployment document written for Greengrass applies as it is::

    {"mqttTopicMapping": {
        "ClientDeviceHelloWorld": {"topic": "clients/+/hello/world", "source": "LocalMqtt", "target": "IotCore"},
        "ClientShadows": {"topic": "$aws/things/+/shadow/#", "source": "IotCore", "target": "LocalMqtt"},
        "Telemetry": {"topic": "sensors/#", "source": "Pubsub", "target": "IotCore",
                      "targetTopicPrefix": "edge/"}},
     "mqtt5RouteOptions": {"ClientDeviceHelloWorld": {"retainAsPublished": false}},
     "brokerClient": {"version": "mqtt5", "receiveMaximum": 100}}

Values may be written as Greengrass's examples write them, ``"true"`` and ``"10"`` included. Every value that
cannot be used raises :class:`ClientDeviceConfigurationError` naming its dotted key
(``mqttTopicMapping.ClientShadows.source``); the deployment is refused before anything changes.

Where Edgewise differs (docs/client-devices.md, "The MQTT bridge"): ``brokerUri`` is checked and kept, but the
bridge always connects to the managed broker's privileged loopback listener; the bridge never takes back a
message it delivered itself, so ``noLocal: false`` cannot make it forward its own messages again (a warning says
so); ``brokerClient.version: mqtt3`` is accepted, and the bridge speaks MQTT 5 to the managed broker anyway.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from edgewise.runtime.clientdevices.errors import ClientDeviceConfigurationError
from edgewise.runtime.clientdevices.names import BRIDGE
from edgewise.topics import MAX_TOPIC_LENGTH, TopicError, validate_filter

logger = logging.getLogger(__name__)

MAPPINGS: Final = "mqttTopicMapping"
ROUTE_OPTIONS: Final = "mqtt5RouteOptions"
BROKER_URI: Final = "brokerUri"
#: Greengrass's older name of ``brokerUri``; ``brokerUri`` wins when both are given.
BROKER_SERVER_URI: Final = "brokerServerUri"
CLIENT_ID: Final = "clientId"
BROKER_CLIENT: Final = "brokerClient"
STARTUP_TIMEOUT: Final = "startupTimeoutSeconds"
#: Keys any Greengrass component's configuration may carry and the bridge has no use for.
IGNORED_KEYS: Final = ("accessControl",)
_TOP_KEYS: Final = (
    MAPPINGS,
    ROUTE_OPTIONS,
    BROKER_URI,
    BROKER_SERVER_URI,
    CLIENT_ID,
    BROKER_CLIENT,
    STARTUP_TIMEOUT,
    *IGNORED_KEYS,
)
_MAPPING_KEYS: Final = ("topic", "source", "target", "targetTopicPrefix")
_ROUTE_KEYS: Final = ("noLocal", "retainAsPublished")
_BROKER_CLIENT_KEYS: Final = ("version", "receiveMaximum", "maximumPacketSize", "sessionExpiryInterval")
_URI_SCHEMES: Final = ("ssl", "tcp", "mqtt", "mqtts", "ws", "wss")

DEFAULT_BROKER_URI: Final = "ssl://localhost:8883"
#: Greengrass picks a random id per start; a fixed one lets the bridge resume its broker session after a
#: restart instead of leaving one abandoned session behind per start.
DEFAULT_CLIENT_ID: Final = "edgewise-mqtt-bridge"
DEFAULT_STARTUP_TIMEOUT: Final = 120
_MAX_UINT16: Final = 65_535
_MAX_UINT32: Final = 4_294_967_295
_MAX_CLIENT_ID: Final = 65_535
_MAX_STARTUP_TIMEOUT: Final = 86_400


class Side(enum.StrEnum):
    """A message broker the bridge relays between, by the name Greengrass's configuration gives it."""

    #: The local MQTT broker that client devices connect to.
    LOCAL_MQTT = "LocalMqtt"
    #: The runtime's local publish/subscribe bus (components' IPC ``PublishToTopic``).
    PUBSUB = "Pubsub"
    #: The cloud, through the runtime's cloud link.
    IOT_CORE = "IotCore"


@dataclass(frozen=True)
class TopicMapping:
    """One ``mqttTopicMapping`` entry: messages on ``topic`` (a filter) at ``source`` go to ``target`` on the same
    topic with ``target_topic_prefix`` in front."""

    name: str
    topic: str
    source: Side
    target: Side
    target_topic_prefix: str = ""
    #: MQTT 5 Retain As Published on the local broker (``mqtt5RouteOptions``): forward the retain flag as the
    #: publisher set it. Only for a ``LocalMqtt`` source.
    retain_as_published: bool = True

    def target_topic(self, topic: str) -> str:
        """The topic a message received on ``topic`` is forwarded to."""
        return self.target_topic_prefix + topic


@dataclass(frozen=True)
class BrokerClientSettings:
    """``brokerClient``: how the bridge's client connects to the local broker (MQTT 5 CONNECT properties)."""

    receive_maximum: int = _MAX_UINT16
    maximum_packet_size: int | None = None  #: None: no limit beyond the protocol's
    session_expiry_interval: int = _MAX_UINT32  #: seconds the broker keeps the session across disconnects


@dataclass(frozen=True)
class BridgeSettings:
    """What the bridge runs with."""

    mappings: tuple[TopicMapping, ...] = ()
    broker_uri: str = DEFAULT_BROKER_URI  #: kept for reference; the managed broker's listener is used
    client_id: str = DEFAULT_CLIENT_ID
    startup_timeout: float = (
        DEFAULT_STARTUP_TIMEOUT  #: seconds :meth:`Bridge.start` waits for its subscriptions
    )
    broker_client: BrokerClientSettings = field(default_factory=BrokerClientSettings)

    def uses(self, side: Side) -> bool:
        """True when a mapping reads from or writes to ``side``."""
        return any(side in (mapping.source, mapping.target) for mapping in self.mappings)


def parse_bridge_settings(configuration: Any) -> BridgeSettings:
    """The settings of a configuration in Greengrass's keys.

    Raises:
        ClientDeviceConfigurationError: a value that cannot be used, naming its dotted key.
    """
    if configuration is None:
        configuration = {}
    if not isinstance(configuration, Mapping):
        raise _error("(the configuration)", f"must be an object, not {_kind(configuration)}")
    _only(configuration, "", _TOP_KEYS)
    mappings = _mappings(configuration.get(MAPPINGS))
    mappings = _apply_route_options(mappings, configuration.get(ROUTE_OPTIONS))
    uri = configuration.get(BROKER_URI)
    uri_key = BROKER_URI
    if uri is None:
        uri, uri_key = configuration.get(BROKER_SERVER_URI), BROKER_SERVER_URI
    return BridgeSettings(
        mappings=mappings,
        broker_uri=DEFAULT_BROKER_URI if uri is None else _broker_uri(uri, uri_key),
        client_id=_client_id(configuration.get(CLIENT_ID)),
        startup_timeout=_integer(
            configuration.get(STARTUP_TIMEOUT, DEFAULT_STARTUP_TIMEOUT),
            STARTUP_TIMEOUT,
            1,
            _MAX_STARTUP_TIMEOUT,
        ),
        broker_client=_broker_client(configuration.get(BROKER_CLIENT)),
    )


def _mappings(value: Any) -> tuple[TopicMapping, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise _error(MAPPINGS, f"must be an object of named mappings, not {_kind(value)}")
    mappings = []
    for name, body in value.items():
        key = f"{MAPPINGS}.{name}"
        if not isinstance(name, str) or not name:
            raise _error(key, "must be named by a non-empty string")
        if body is None:
            continue  # a merge that sets a mapping to null removes it
        if not isinstance(body, Mapping):
            raise _error(key, f"must be an object with {', '.join(_MAPPING_KEYS)}, not {_kind(body)}")
        _only(body, key, _MAPPING_KEYS)
        mappings.append(_mapping(name, body, key))
    return tuple(mappings)


def _mapping(name: str, body: Mapping[str, Any], key: str) -> TopicMapping:
    for required in ("topic", "source", "target"):
        if body.get(required) is None:
            raise _error(f"{key}.{required}", "is required")
    topic = body["topic"]
    if not isinstance(topic, str):
        raise _error(f"{key}.topic", f"must be an MQTT topic filter, not {_kind(topic)}")
    try:
        validate_filter(topic)
    except TopicError as exc:
        raise _error(f"{key}.topic", _topic_problem(exc)) from None
    source = _side(body["source"], f"{key}.source")
    target = _side(body["target"], f"{key}.target")
    if source is target:
        raise _error(f"{key}.target", f"must differ from the source ({source})")
    prefix = body.get("targetTopicPrefix")
    if prefix is None:
        prefix = ""
    if not isinstance(prefix, str):
        raise _error(f"{key}.targetTopicPrefix", f"must be a string, not {_kind(prefix)}")
    if "+" in prefix or "#" in prefix:
        raise _error(f"{key}.targetTopicPrefix", f"{prefix!r} must not contain the wildcards '+' or '#'")
    if "\0" in prefix:
        raise _error(f"{key}.targetTopicPrefix", "must not contain NUL")
    if len((prefix + topic).encode("utf-8")) > MAX_TOPIC_LENGTH:
        raise _error(f"{key}.targetTopicPrefix", f"and the topic together exceed {MAX_TOPIC_LENGTH} bytes")
    return TopicMapping(name, topic, source, target, prefix)


def _side(value: Any, key: str) -> Side:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return Side(value)
    choices = ", ".join(side.value for side in Side)
    raise _error(key, f"must be one of {choices}, not {value!r:.80}")


def _apply_route_options(mappings: tuple[TopicMapping, ...], value: Any) -> tuple[TopicMapping, ...]:
    if value is None:
        return mappings
    if not isinstance(value, Mapping):
        raise _error(ROUTE_OPTIONS, f"must be an object of options by mapping name, not {_kind(value)}")
    by_name = {mapping.name: mapping for mapping in mappings}
    for name, body in value.items():
        key = f"{ROUTE_OPTIONS}.{name}"
        mapping = by_name.get(name) if isinstance(name, str) else None
        if mapping is None:
            raise _error(key, f"names no mapping of {MAPPINGS}")
        if body is None:
            continue
        if not isinstance(body, Mapping):
            raise _error(key, f"must be an object with {', '.join(_ROUTE_KEYS)}, not {_kind(body)}")
        _only(body, key, _ROUTE_KEYS)
        no_local = _flag(body.get("noLocal", False), f"{key}.noLocal")
        retain_as_published = _flag(body.get("retainAsPublished", True), f"{key}.retainAsPublished")
        if mapping.source is not Side.LOCAL_MQTT:
            logger.warning(
                "%s: %s applies to mappings whose source is LocalMqtt; ignored for %r (source %s)",
                BRIDGE,
                key,
                name,
                mapping.source,
            )
            continue
        if "noLocal" in body and not no_local:
            logger.warning(
                "%s: %s.noLocal is false, but the bridge never takes back a message it published on the local "
                "broker itself (it would loop); messages from client devices are forwarded as always",
                BRIDGE,
                key,
            )
        by_name[name] = TopicMapping(
            mapping.name,
            mapping.topic,
            mapping.source,
            mapping.target,
            mapping.target_topic_prefix,
            retain_as_published,
        )
    return tuple(by_name[mapping.name] for mapping in mappings)


def _broker_uri(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _error(key, f"must be a URI such as {DEFAULT_BROKER_URI}, not {value!r:.80}")
    try:
        parts = urlsplit(value.strip())
        if parts.port == 0:  # reading the port also checks that it is a number up to 65535
            raise ValueError("Port 0 is not a broker's port")
    except ValueError as exc:
        raise _error(key, f"{value!r:.80} is not a URI: {exc}") from None
    if parts.scheme not in _URI_SCHEMES or not parts.hostname:
        schemes = ", ".join(_URI_SCHEMES)
        raise _error(key, f"must be a URI such as {DEFAULT_BROKER_URI} ({schemes}), not {value!r:.80}")
    return value.strip()


def _client_id(value: Any) -> str:
    if value is None:
        return DEFAULT_CLIENT_ID
    if not isinstance(value, str) or not value or len(value.encode("utf-8")) > _MAX_CLIENT_ID:
        raise _error(
            CLIENT_ID, f"must be a non-empty string of at most {_MAX_CLIENT_ID} bytes, not {value!r:.80}"
        )
    if "\0" in value:
        raise _error(CLIENT_ID, "must not contain NUL")
    return value


def _broker_client(value: Any) -> BrokerClientSettings:
    if value is None:
        return BrokerClientSettings()
    if not isinstance(value, Mapping):
        raise _error(
            BROKER_CLIENT, f"must be an object with {', '.join(_BROKER_CLIENT_KEYS)}, not {_kind(value)}"
        )
    _only(value, BROKER_CLIENT, _BROKER_CLIENT_KEYS)
    version = value.get("version")
    if version is not None:
        if not isinstance(version, str) or version.strip().lower() not in ("mqtt3", "mqtt5"):
            raise _error(f"{BROKER_CLIENT}.version", f"must be mqtt3 or mqtt5, not {version!r:.80}")
        if version.strip().lower() == "mqtt3":
            logger.info(
                "%s: %s.version is mqtt3; the bridge speaks MQTT 5 to the managed local broker",
                BRIDGE,
                BROKER_CLIENT,
            )
    packet_size = value.get("maximumPacketSize")
    return BrokerClientSettings(
        receive_maximum=_integer(
            value.get("receiveMaximum", _MAX_UINT16), f"{BROKER_CLIENT}.receiveMaximum", 1, _MAX_UINT16
        ),
        maximum_packet_size=None
        if packet_size is None
        else _integer(packet_size, f"{BROKER_CLIENT}.maximumPacketSize", 1, _MAX_UINT32),
        session_expiry_interval=_integer(
            value.get("sessionExpiryInterval", _MAX_UINT32),
            f"{BROKER_CLIENT}.sessionExpiryInterval",
            0,
            _MAX_UINT32,
        ),
    )


def _integer(value: Any, key: str, low: int, high: int) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = int(value.strip())
    if number is None or not low <= number <= high:
        raise _error(key, f"must be a whole number from {low} to {high}, not {value!r:.80}")
    return number


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _error(key, f"must be true or false, not {value!r:.80}")


def _only(body: Mapping[Any, Any], key: str, allowed: tuple[str, ...]) -> None:
    unknown = sorted(str(name) for name in body if name not in allowed)
    if unknown:
        where = f"{key}.{unknown[0]}" if key else unknown[0]
        raise _error(where, f"is not supported (the keys are {', '.join(allowed)})")


def _topic_problem(error: TopicError) -> str:
    """The topic module's message without its own ``topic filter:`` label (the key names the field)."""
    text = str(error)
    return text.partition(": ")[2] or text


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _error(key: str, problem: str) -> ClientDeviceConfigurationError:
    return ClientDeviceConfigurationError(BRIDGE, key, problem)
