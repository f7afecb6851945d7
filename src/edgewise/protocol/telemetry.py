"""Telemetry: a device exports the messages of its streams to the cloud in batches, and publishes on its own
device topics (docs/device-protocol.md, "Telemetry").

Stream exports are one conversation. The device publishes an :class:`ExportBatch` (QoS 1) on
``$aws/things/<thing>/edgewise/telemetry/batch`` (:func:`batch_topic`); once the batch is stored the cloud answers on
``.../batch/accepted`` with :class:`BatchAccepted`, or refuses it on ``.../batch/rejected`` with
:class:`BatchRejection` (:func:`reply_topic`), echoing the batch's ``clientToken``. The cloud reads a batch with
:func:`parse_batch`; the device reads a reply with :func:`read_reply`.

A batch is at most :data:`MAX_BATCH_BYTES`. :func:`build_batch` writes compact JSON, so its size is known before it
is built: :data:`EMPTY_BATCH_BYTES` (the envelope with the longest allowed names) plus
:func:`encoded_record_size` of each record never exceeds the built size, and an exporter that packs records while
that sum stays within :data:`MAX_BATCH_BYTES` never builds a batch the cloud refuses for its size.

Device topics are the other way in: whatever a device publishes under ``dt/<thing>/...``
(:data:`DEVICE_TOPIC_FILTER`) is stored as telemetry of ``<thing>`` with the topic as its stream
(:func:`thing_of_device_topic`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from edgewise.errors import EdgewiseError
from edgewise.protocol import batches
from edgewise.protocol.batches import (
    ACCEPTED,
    CLIENT_TOKEN_MAX_LENGTH,
    INTERNAL_ERROR,
    INVALID_PAYLOAD,
    MAX_BATCH_BYTES,
    REJECTED,
    THROTTLED,
    BatchRejection,
    BatchTopics,
    Outcome,
    RejectionCode,
    build_rejection,
    client_token_of,
    count,
    dumps,
    valid_token,
)

__all__ = [
    "ACCEPTED",
    "BATCH_FILTER",
    "CLIENT_TOKEN_MAX_LENGTH",
    "DEVICE_TOPIC_FILTER",
    "EMPTY_BATCH_BYTES",
    "EXPORT_ID_MAX_LENGTH",
    "INTERNAL_ERROR",
    "INVALID_PAYLOAD",
    "MAX_BATCH_BYTES",
    "MAX_INTEGER",
    "MAX_RECORD_PAYLOAD_BYTES",
    "REJECTED",
    "SOURCE_MAX_LENGTH",
    "STREAM_MAX_LENGTH",
    "STREAM_NAME",
    "THROTTLED",
    "TOPICS",
    "BatchAccepted",
    "BatchRejection",
    "ExportBatch",
    "ExportRecord",
    "Outcome",
    "RejectionCode",
    "TelemetryPayloadError",
    "batch_topic",
    "build_accepted",
    "build_batch",
    "build_rejection",
    "client_token_of",
    "encoded_record_size",
    "is_stream_name",
    "parse_batch",
    "read_reply",
    "record_overhead",
    "reply_topic",
    "thing_of_batch",
    "thing_of_device_topic",
]

#: What the cloud subscribes to: every thing's export batches.
BATCH_FILTER: Final = "$aws/things/+/edgewise/telemetry/batch"
#: The device topics stored as telemetry by default: ``dt/<thing>/...``.
DEVICE_TOPIC_FILTER: Final = "dt/+/#"
STREAM_MAX_LENGTH: Final = 256
#: A device's message stream name and an export definition's identifier, as the stream manager SDK allows them.
SOURCE_MAX_LENGTH: Final = 255
EXPORT_ID_MAX_LENGTH: Final = 255
#: Sequence numbers and timestamps are signed 64-bit integers in the cloud's store.
MAX_INTEGER: Final = 2**63 - 1

#: A cloud telemetry stream name: no leading '/', so it never reads as an absolute path.
STREAM_NAME: Final = re.compile(r"[A-Za-z0-9_.:#-][A-Za-z0-9_.:/#-]{0,255}")
#: Stream manager names (Java's ``\\w`` is ASCII): letters, digits, ``_``, space, ``,``, ``.`` and ``-``.
_SOURCE_NAME = re.compile(r"[A-Za-z0-9_ ,.\-]{1,255}")
TOPICS: Final = BatchTopics("telemetry")
_BATCH_FIELDS = ("clientToken", "stream", "source", "exportId", "records")
_RECORD_FIELDS = ("sequenceNumber", "timestamp", "payload")


class TelemetryPayloadError(EdgewiseError):
    """A batch the cloud refuses, answered on ``/rejected`` with code ``InvalidPayload`` and this message, which
    names the field (``records[3].payload``) and the problem."""

    code: Final[RejectionCode] = INVALID_PAYLOAD

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Field {field!r} is invalid: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class ExportRecord:
    """One message of a device stream, as exported."""

    sequence_number: int  #: its sequence number in the device stream
    timestamp_ms: int  #: when it was appended, ms since the epoch
    payload: bytes


@dataclass(frozen=True)
class ExportBatch:
    """Records of one device stream, in ascending sequence order, bound for one cloud telemetry stream."""

    client_token: str
    stream: str  #: the cloud telemetry stream
    source: str  #: the device's message stream
    export_id: str  #: the export definition's identifier
    records: tuple[ExportRecord, ...]


@dataclass(frozen=True)
class BatchAccepted:
    """The cloud stored a batch: ``stored`` records were new, ``duplicates`` were already stored."""

    client_token: str
    stored: int
    duplicates: int
    last_sequence_number: int  #: the batch's last record, the device's checkpoint


# -- topics ---------------------------------------------------------------------------------------------


def batch_topic(thing: str) -> str:
    """The topic ``thing`` publishes its batches on."""
    return TOPICS.batch_topic(thing)


def reply_topic(thing: str, outcome: Outcome) -> str:
    """The topic the cloud answers ``thing``'s batches on."""
    return TOPICS.reply_topic(thing, outcome)


def thing_of_batch(topic: str) -> str | None:
    """The thing a batch topic names, or None when ``topic`` is not one."""
    return TOPICS.thing_of_batch(topic)


def thing_of_device_topic(topic: str) -> str | None:
    """The thing of a device topic ``dt/<thing>/...``, or None when ``topic`` is not one."""
    parts = topic.split("/", 2)
    if len(parts) >= 2 and parts[0] == "dt" and parts[1]:
        return parts[1]
    return None


# -- sizes ----------------------------------------------------------------------------------------------


def _record_body(record: ExportRecord) -> dict[str, Any]:
    return {
        "sequenceNumber": record.sequence_number,
        "timestamp": record.timestamp_ms,
        "payload": base64.b64encode(record.payload).decode("ascii"),
    }


def _envelope(client_token: str, stream: str, source: str, export_id: str, records: list[Any]) -> bytes:
    return dumps(
        {
            "clientToken": client_token,
            "stream": stream,
            "source": source,
            "exportId": export_id,
            "records": records,
        }
    )


#: The bytes of a batch without records whose names are as long as allowed: every batch's envelope fits in it.
EMPTY_BATCH_BYTES: Final = len(
    _envelope(
        "x" * CLIENT_TOKEN_MAX_LENGTH,
        "x" * STREAM_MAX_LENGTH,
        "x" * SOURCE_MAX_LENGTH,
        "x" * EXPORT_ID_MAX_LENGTH,
        [],
    )
)


def record_overhead(sequence_number: int, timestamp_ms: int) -> int:
    """The bytes a record with these numbers adds to a batch besides its base64 payload (its separator included)."""
    return len(dumps({"sequenceNumber": sequence_number, "timestamp": timestamp_ms, "payload": ""})) + 1


def encoded_record_size(record: ExportRecord) -> int:
    """The most bytes ``record`` adds to a batch: its JSON, its separator included."""
    return record_overhead(record.sequence_number, record.timestamp_ms) + 4 * ((len(record.payload) + 2) // 3)


#: The largest payload a batch of one record can carry, whatever the names and numbers.
MAX_RECORD_PAYLOAD_BYTES: Final = (
    (MAX_BATCH_BYTES - EMPTY_BATCH_BYTES - record_overhead(MAX_INTEGER, MAX_INTEGER)) // 4 * 3
)


# -- batches --------------------------------------------------------------------------------------------


def build_batch(batch: ExportBatch) -> bytes:
    """The payload of ``batch``: compact JSON, at most ``EMPTY_BATCH_BYTES`` plus each record's
    :func:`encoded_record_size`."""
    return _envelope(
        batch.client_token,
        batch.stream,
        batch.source,
        batch.export_id,
        [_record_body(record) for record in batch.records],
    )


def is_stream_name(name: str) -> bool:
    """Whether ``name`` is a valid cloud telemetry stream name."""
    return STREAM_NAME.fullmatch(name) is not None


def _integer(value: Any, field: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INTEGER:
        raise TelemetryPayloadError(field, f"must be {what}, an integer from 0 to {MAX_INTEGER}")
    return value


def _record(value: Any, field: str) -> ExportRecord:
    if not isinstance(value, dict):
        raise TelemetryPayloadError(field, "must be an object with sequenceNumber, timestamp and payload")
    unknown = sorted(set(value) - set(_RECORD_FIELDS))
    if unknown:
        raise TelemetryPayloadError(
            f"{field}.{unknown[0][:80]}",
            "is not a field of a record (it takes sequenceNumber, timestamp, payload)",
        )
    for name in _RECORD_FIELDS:
        if name not in value:
            raise TelemetryPayloadError(f"{field}.{name}", "is required")
    sequence_number = _integer(value["sequenceNumber"], f"{field}.sequenceNumber", "a sequence number")
    timestamp = _integer(value["timestamp"], f"{field}.timestamp", "milliseconds since the epoch")
    text = value["payload"]
    if not isinstance(text, str):
        raise TelemetryPayloadError(f"{field}.payload", "must be the message's bytes as a base64 string")
    try:
        payload = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise TelemetryPayloadError(f"{field}.payload", "is not valid base64") from None
    return ExportRecord(sequence_number=sequence_number, timestamp_ms=timestamp, payload=payload)


def parse_batch(payload: bytes) -> ExportBatch:
    """Parse and check an export batch.

    Raises:
        TelemetryPayloadError: naming the field and the problem.
    """
    if len(payload) > MAX_BATCH_BYTES:
        raise TelemetryPayloadError(
            "payload", f"is {len(payload)} bytes; a batch is at most {MAX_BATCH_BYTES}"
        )
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise TelemetryPayloadError("payload", f"is not JSON: {str(exc)[:200]}") from None
    if not isinstance(body, dict):
        raise TelemetryPayloadError("payload", "must be a JSON object")
    unknown = sorted(set(body) - set(_BATCH_FIELDS))
    if unknown:
        raise TelemetryPayloadError(
            unknown[0][:80], f"is not a field of a batch (it takes {', '.join(_BATCH_FIELDS)})"
        )
    for name in _BATCH_FIELDS:
        if name not in body:
            raise TelemetryPayloadError(name, "is required")
    token = valid_token(body["clientToken"])
    if token is None:
        raise TelemetryPayloadError(
            "clientToken", f"must be a string of 1 to {CLIENT_TOKEN_MAX_LENGTH} characters"
        )
    stream = body["stream"]
    if not isinstance(stream, str) or not is_stream_name(stream):
        raise TelemetryPayloadError(
            "stream",
            f"must be 1 to {STREAM_MAX_LENGTH} letters, digits and '_.:/#-', not starting with '/'",
        )
    source, export_id = body["source"], body["exportId"]
    if not isinstance(source, str) or _SOURCE_NAME.fullmatch(source) is None:
        raise TelemetryPayloadError(
            "source", f"must be a stream name: 1 to {SOURCE_MAX_LENGTH} letters, digits and '_ ,.-'"
        )
    if not isinstance(export_id, str) or _SOURCE_NAME.fullmatch(export_id) is None:
        raise TelemetryPayloadError(
            "exportId",
            f"must be an export identifier: 1 to {EXPORT_ID_MAX_LENGTH} letters, digits and '_ ,.-'",
        )
    values = body["records"]
    if not isinstance(values, list) or not values:
        raise TelemetryPayloadError("records", "must be a non-empty list of records")
    records: list[ExportRecord] = []
    for index, value in enumerate(values):
        record = _record(value, f"records[{index}]")
        if records and record.sequence_number <= records[-1].sequence_number:
            raise TelemetryPayloadError(
                f"records[{index}].sequenceNumber",
                f"is {record.sequence_number}, not above the previous record's {records[-1].sequence_number}",
            )
        records.append(record)
    return ExportBatch(
        client_token=token, stream=stream, source=source, export_id=export_id, records=tuple(records)
    )


# -- replies --------------------------------------------------------------------------------------------


def build_accepted(reply: BatchAccepted) -> bytes:
    """The payload of ``reply``."""
    return dumps(
        {
            "clientToken": reply.client_token,
            "stored": reply.stored,
            "duplicates": reply.duplicates,
            "lastSequenceNumber": reply.last_sequence_number,
        }
    )


def read_reply(topic: str, payload: bytes) -> BatchAccepted | BatchRejection | None:
    """The reply that arrived on ``topic``, or None when it is not a reply this module can read (not a reply
    topic, not a JSON object, an acceptance without its token or counts)."""
    reply = batches.read_reply(TOPICS, topic, payload)
    if reply is None or isinstance(reply, BatchRejection):
        return reply
    token, body = reply
    stored, duplicates = count(body.get("stored")), count(body.get("duplicates"))
    last = count(body.get("lastSequenceNumber"))
    if token is None or stored is None or duplicates is None or last is None:
        return None
    return BatchAccepted(token, stored, duplicates, last)
