"""Fleet status and presence: what a device says about itself, on two topics of its own.

- ``$aws/things/<thing>/greengrassv2/health/json``: Greengrass fleet status messages (:class:`HealthMessage`),
  COMPLETE (every component) or PARTIAL (those that changed), split into chunks that share one
  ``sequenceNumber`` when larger than :data:`MAX_PAYLOAD_BYTES`.
- ``$aws/things/<thing>/edgewise/presence``, retained: :class:`PresenceMessage`, online on every connection and
  offline as that connection's MQTT last will, both with the time the connection opened.

docs/device-protocol.md ("Fleet status and presence") describes both. They live in one module because they are one
conversation there: the cloud records both in the device's status, with the same checks.

The device builds messages with :func:`encode_health` and :func:`encode_presence`; the cloud reads them with
:func:`parse_health` and :func:`parse_presence`. The parsers check what the cloud records and refuse a payload with
a :class:`StatusMessageError` naming the field path. They do not read what only the sender uses (``thing``,
``sequenceNumber``, ``trigger``, ``runtime``, a component's ``fleetConfigArns``), nor look inside
``componentStatusDetails`` and ``deploymentInformation``, which the cloud keeps as sent: a Greengrass nucleus fills
those its own way and is recorded all the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from edgewise.errors import EdgewiseError

#: The most a fleet status payload may be; a larger message is split into chunks.
MAX_PAYLOAD_BYTES = 128_000
#: ``runtime`` of the messages the Edgewise device sends.
RUNTIME = "edgewise"
HEALTH_TOPIC_FILTER = "$aws/things/+/greengrassv2/health/json"
PRESENCE_TOPIC_FILTER = "$aws/things/+/edgewise/presence"

_MAX_COMPONENTS = 10_000
_MAX_CHUNKS = 10_000
_STRING_LIMIT = 256
_PRESENCE_STATES = {"online": True, "offline": False}

JsonObject = Mapping[str, Any]
_Choice = TypeVar("_Choice", bound=StrEnum)


class StatusMessageError(EdgewiseError):
    """A fleet status or presence payload that breaks the protocol; names the field path and the problem."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Field {field!r} is invalid: {problem}")
        self.field = field
        self.problem = problem


class OverallStatus(StrEnum):
    """``overallDeviceStatus``: UNHEALTHY while any component is BROKEN."""

    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"


class MessageType(StrEnum):
    """``messageType``: whether a message lists every component or only those that changed."""

    COMPLETE = "COMPLETE"
    PARTIAL = "PARTIAL"


class Trigger(StrEnum):
    """Why a fleet status message was sent (the ``trigger`` field)."""

    NUCLEUS_LAUNCH = "NUCLEUS_LAUNCH"
    CADENCE = "CADENCE"
    RECONNECT = "RECONNECT"
    COMPONENT_STATUS_CHANGE = "COMPONENT_STATUS_CHANGE"
    THING_DEPLOYMENT = "THING_DEPLOYMENT"
    THING_GROUP_DEPLOYMENT = "THING_GROUP_DEPLOYMENT"

    @classmethod
    def for_group(cls, group: str | None) -> Trigger:
        """The trigger of a fleet deployment to ``thing/<name>`` or ``thinggroup/<name>`` (or unknown)."""
        return cls.THING_DEPLOYMENT if group and group.startswith("thing/") else cls.THING_GROUP_DEPLOYMENT


# -- topics ---------------------------------------------------------------------------------------------


def health_topic(thing: str) -> str:
    """The topic of ``thing``'s fleet status messages."""
    return f"$aws/things/{thing}/greengrassv2/health/json"


def presence_topic(thing: str) -> str:
    """The topic of ``thing``'s presence messages."""
    return f"$aws/things/{thing}/edgewise/presence"


def health_thing(topic: str) -> str | None:
    """The thing whose fleet status topic ``topic`` is, or None when it is no such topic."""
    parts = topic.split("/")
    if (
        len(parts) == 6
        and parts[:2] == ["$aws", "things"]
        and parts[3:] == ["greengrassv2", "health", "json"]
    ):
        return parts[2]
    return None


def presence_thing(topic: str) -> str | None:
    """The thing whose presence topic ``topic`` is, or None when it is no such topic."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[:2] == ["$aws", "things"] and parts[3:] == ["edgewise", "presence"]:
        return parts[2]
    return None


# -- models ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkInfo:
    """``chunkInfo``: which part of a message split by its size this is, counted from 1."""

    chunk_id: int
    total_chunks: int


@dataclass(frozen=True)
class ComponentHealth:
    """One entry of ``components``."""

    name: str
    version: str = ""
    #: The lifecycle state, e.g. ``RUNNING`` or ``BROKEN``.
    status: str = ""
    #: A deployment named it (rather than a dependency).
    is_root: bool = False
    #: What a deployment asked for, when a built-in serves another version of its major line.
    requested_version: str | None = None
    #: ``componentStatusDetails`` of an ERRORED or BROKEN component, as :func:`component_status_details` builds it.
    status_details: JsonObject | None = None
    #: The configurations that named it; only the sender writes it (:func:`parse_health` does not read it).
    fleet_config_arns: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as it is sent (and as the cloud stores it)."""
        entry: dict[str, Any] = {"componentName": self.name, "version": self.version}
        if self.fleet_config_arns is not None:
            entry["fleetConfigArns"] = list(self.fleet_config_arns)
        entry["isRoot"] = self.is_root
        entry["status"] = self.status
        if self.requested_version is not None:
            entry["requestedVersion"] = self.requested_version
        if self.status_details is not None:
            entry["componentStatusDetails"] = dict(self.status_details)
        return entry


@dataclass(frozen=True)
class HealthMessage:
    """One fleet status message, or one chunk of a split one.

    ``thing``, ``sequence_number``, ``trigger`` and ``runtime`` are the sender's: :func:`encode_health` writes
    them when set, :func:`parse_health` leaves them None.
    """

    overall_status: OverallStatus
    #: When the device made it, in milliseconds since the epoch.
    timestamp: int
    message_type: MessageType = MessageType.COMPLETE
    components: tuple[ComponentHealth, ...] = ()
    #: ``ggcVersion``: the Greengrass version the device is compatible with.
    core_version: str = ""
    platform: str = ""
    architecture: str = ""
    #: ``deploymentInformation`` after a fleet deployment, as :func:`deployment_information` builds it.
    deployment: JsonObject | None = None
    #: Set on a chunk of a split message; :func:`encode_health` splits by size itself.
    chunk: ChunkInfo | None = None
    thing: str | None = None
    sequence_number: int | None = None
    trigger: Trigger | None = None
    runtime: str | None = None

    @property
    def complete(self) -> bool:
        """Whether it lists every component (a chunk lists those of its part)."""
        return self.message_type is MessageType.COMPLETE


@dataclass(frozen=True)
class PresenceMessage:
    """Whether a device is connected, as of the connection that opened at ``timestamp`` (milliseconds)."""

    connected: bool
    timestamp: int


# -- builders -------------------------------------------------------------------------------------------


def component_status_details(status_codes: Iterable[str], status_reason: str) -> dict[str, Any]:
    """``componentStatusDetails`` of an ERRORED or BROKEN component."""
    return {"statusCodes": list(status_codes), "statusReason": status_reason}


def deployment_information(
    *,
    status: str,
    configuration_arn: str,
    deployment_id: str,
    detailed_status: str,
    failure_cause: str,
    error_stack: Sequence[str],
    error_types: Sequence[str],
) -> dict[str, Any]:
    """``deploymentInformation`` of the message sent after a fleet deployment finished."""
    return {
        "status": status,
        "fleetConfigurationArnForStatus": configuration_arn,
        "deploymentId": deployment_id,
        "statusDetails": {
            "detailedStatus": detailed_status,
            "failureCause": failure_cause,
            "errorStack": list(error_stack),
            "errorTypes": list(error_types),
        },
        "unchangedRootComponents": [],
    }


def health_payloads(message: JsonObject, components: Sequence[JsonObject]) -> list[bytes]:
    """``message`` with ``components``, as one payload, or as chunks of at most 128,000 bytes each."""
    whole = json.dumps({**message, "components": components}, separators=(",", ":")).encode()
    if len(whole) <= MAX_PAYLOAD_BYTES:
        return [whole]
    # The envelope is measured with the widest chunkInfo and spaced separators: an upper bound of every chunk's.
    envelope = len(
        json.dumps({**message, "components": [], "chunkInfo": {"chunkId": 99999, "totalChunks": 99999}})
    )
    chunks: list[list[JsonObject]] = [[]]
    size = envelope
    for component in components:
        length = len(json.dumps(component, separators=(",", ":"))) + 1
        if chunks[-1] and size + length > MAX_PAYLOAD_BYTES:
            chunks.append([])
            size = envelope
        chunks[-1].append(component)
        size += length
    return [
        json.dumps(
            {**message, "components": chunk, "chunkInfo": {"chunkId": index, "totalChunks": len(chunks)}},
            separators=(",", ":"),
        ).encode()
        for index, chunk in enumerate(chunks, start=1)
    ]


def encode_health(message: HealthMessage) -> list[bytes]:
    """The payload(s) of ``message``: one, or chunks when it is larger than :data:`MAX_PAYLOAD_BYTES`.

    Raises:
        ValueError: ``message`` is a chunk already.
    """
    if message.chunk is not None:
        raise ValueError("a message to send is split by encode_health, not given a chunk")
    fields: dict[str, Any] = {
        "ggcVersion": message.core_version,
        "platform": message.platform,
        "architecture": message.architecture,
    }
    if message.runtime is not None:
        fields["runtime"] = message.runtime
    if message.thing is not None:
        fields["thing"] = message.thing
    if message.sequence_number is not None:
        fields["sequenceNumber"] = message.sequence_number
    fields["timestamp"] = message.timestamp
    fields["messageType"] = message.message_type.value
    if message.trigger is not None:
        fields["trigger"] = message.trigger.value
    fields["overallDeviceStatus"] = message.overall_status.value
    if message.deployment is not None:
        fields["deploymentInformation"] = dict(message.deployment)
    return health_payloads(fields, [component.to_json() for component in message.components])


def encode_presence(message: PresenceMessage) -> bytes:
    """The payload of ``message``."""
    state = "online" if message.connected else "offline"
    return json.dumps({"state": state, "timestamp": message.timestamp}).encode()


# -- parsers --------------------------------------------------------------------------------------------


def _object(payload: bytes) -> dict[str, Any]:
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StatusMessageError("payload", f"is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise StatusMessageError("payload", "must be a JSON object")
    return document


def _string(document: JsonObject, field: str, *, where: str = "", default: str | None = None) -> str:
    value = document.get(field, default)
    if not isinstance(value, str):
        raise StatusMessageError(where + field, f"must be a string, not {type(value).__name__}")
    if len(value) > _STRING_LIMIT:
        raise StatusMessageError(where + field, f"is longer than {_STRING_LIMIT} characters")
    return value


def _timestamp(document: JsonObject, field: str) -> int:
    value = document.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise StatusMessageError(field, "must be a non-negative integer (milliseconds since the epoch)")
    return value


def _component(index: int, entry: object) -> ComponentHealth:
    where = f"components[{index}]"
    if not isinstance(entry, dict):
        raise StatusMessageError(where, "must be an object")
    name = _string(entry, "componentName", where=f"{where}.")
    version = _string(entry, "version", where=f"{where}.", default="")
    status = _string(entry, "status", where=f"{where}.", default="")
    is_root = entry.get("isRoot", False)
    if not name:
        raise StatusMessageError(f"{where}.componentName", "must not be empty")
    if not isinstance(is_root, bool):
        raise StatusMessageError(f"{where}.isRoot", "must be true or false")
    requested = entry.get("requestedVersion")
    if requested is not None:
        requested = _string(entry, "requestedVersion", where=f"{where}.")
    details = entry.get("componentStatusDetails")
    if details is not None and not isinstance(details, dict):
        raise StatusMessageError(f"{where}.componentStatusDetails", "must be an object")
    return ComponentHealth(
        name=name,
        version=version,
        status=status,
        is_root=is_root,
        requested_version=requested,
        status_details=details,
    )


def _chunk_number(info: JsonObject, key: str) -> int:
    value = info.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_CHUNKS:
        raise StatusMessageError(f"chunkInfo.{key}", f"must be an integer from 1 to {_MAX_CHUNKS}")
    return value


def _chunk(info: object) -> ChunkInfo | None:
    if info is None:
        return None
    if not isinstance(info, dict):
        raise StatusMessageError("chunkInfo", "must be an object")
    chunk, total = (_chunk_number(info, key) for key in ("chunkId", "totalChunks"))
    if chunk > total:
        raise StatusMessageError("chunkInfo.chunkId", f"is {chunk}, more than totalChunks {total}")
    return ChunkInfo(chunk_id=chunk, total_chunks=total)


def _choice(document: JsonObject, field: str, kind: type[_Choice], default: str | None = None) -> _Choice:
    value = _string(document, field, default=default)
    try:
        return kind(value)
    except ValueError:
        raise StatusMessageError(field, f"must be one of {', '.join(kind)}") from None


def parse_health(payload: bytes) -> HealthMessage:
    """Check a fleet status message (or one chunk of one).

    Raises:
        StatusMessageError: naming the field that is wrong.
    """
    document = _object(payload)
    overall = _choice(document, "overallDeviceStatus", OverallStatus)
    message_type = _choice(document, "messageType", MessageType, default=MessageType.COMPLETE.value)
    entries = document.get("components", [])
    if not isinstance(entries, list) or len(entries) > _MAX_COMPONENTS:
        raise StatusMessageError("components", f"must be a list of at most {_MAX_COMPONENTS} objects")
    components = tuple(_component(index, entry) for index, entry in enumerate(entries))
    deployment = document.get("deploymentInformation")
    if deployment is not None and not isinstance(deployment, dict):
        raise StatusMessageError("deploymentInformation", "must be an object")
    return HealthMessage(
        chunk=_chunk(document.get("chunkInfo")),
        overall_status=overall,
        timestamp=_timestamp(document, "timestamp"),
        message_type=message_type,
        components=components,
        core_version=_string(document, "ggcVersion", default=""),
        platform=_string(document, "platform", default=""),
        architecture=_string(document, "architecture", default=""),
        deployment=deployment,
    )


def parse_presence(payload: bytes) -> PresenceMessage:
    """Check a presence message.

    Raises:
        StatusMessageError: naming the field that is wrong.
    """
    document = _object(payload)
    state = document.get("state")
    if not isinstance(state, str) or state not in _PRESENCE_STATES:
        raise StatusMessageError("state", f"must be one of {', '.join(_PRESENCE_STATES)}")
    return PresenceMessage(connected=_PRESENCE_STATES[state], timestamp=_timestamp(document, "timestamp"))
