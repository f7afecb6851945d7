"""Storing telemetry: records from exports and device topics go into ``telemetry_messages`` exactly once.

:func:`store_records` is the one way in, used by the ingest worker, routing rules and anything else that stores
telemetry. It checks every record before it writes any, inserts with ``ON CONFLICT DO NOTHING`` (SQLite and
PostgreSQL), so a record resent with the same thing, stream, source and sequence number is counted as a duplicate instead
of stored twice, and fills ``payload_json`` when the payload is a JSON object or array. It runs inside the
caller's transaction: the caller commits, or rolls back and nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.telemetry.models import TelemetryMessage
from edgewise.names import THING_NAME_MAX_LENGTH

#: The largest payload stored, the size of a message from a device.
MAX_PAYLOAD_BYTES: Final = 128 * 1024
STREAM_MAX_LENGTH: Final = 256
TOPIC_MAX_LENGTH: Final = 256
#: A device message stream's name (the stream manager's limit).
SOURCE_MAX_LENGTH: Final = 255
#: Sequence numbers and timestamps are signed 64-bit columns.
_MAX_INTEGER: Final = 2**63 - 1
_JSON_OPENERS: Final = (b"{", b"[")


@dataclass(frozen=True)
class TelemetryRecord:
    """One message to store. ``source`` and ``sequence_number`` are set for exported records (the device's
    message stream and the record's number in it make storing idempotent); ``topic`` for messages that arrived
    on an MQTT topic."""

    thing_name: str  #: the device it came from; "" when that cannot be known
    stream: str  #: the telemetry stream (for a device-topic message, the topic)
    timestamp_ms: int  #: ms since the epoch
    payload: bytes
    sequence_number: int | None = None
    topic: str | None = None
    source: str = ""


@dataclass(frozen=True)
class StoreResult:
    """What :func:`store_records` did: ``stored`` records were new, ``duplicates`` were stored before."""

    stored: int
    duplicates: int


def _check(record: TelemetryRecord, field: str) -> None:
    where = (
        f"(thing {record.thing_name[:THING_NAME_MAX_LENGTH]!r}, stream {record.stream[:STREAM_MAX_LENGTH]!r})"
    )
    if len(record.thing_name) > THING_NAME_MAX_LENGTH:
        raise InvalidRequestError(f"{field}.thing_name", f"is longer than {THING_NAME_MAX_LENGTH} characters")
    if not 0 < len(record.stream) <= STREAM_MAX_LENGTH:
        raise InvalidRequestError(f"{field}.stream", f"must be 1 to {STREAM_MAX_LENGTH} characters {where}")
    if record.topic is not None and not 0 < len(record.topic) <= TOPIC_MAX_LENGTH:
        raise InvalidRequestError(f"{field}.topic", f"must be 1 to {TOPIC_MAX_LENGTH} characters {where}")
    if len(record.source) > SOURCE_MAX_LENGTH:
        raise InvalidRequestError(f"{field}.source", f"is longer than {SOURCE_MAX_LENGTH} characters {where}")
    if len(record.payload) > MAX_PAYLOAD_BYTES:
        raise InvalidRequestError(
            f"{field}.payload",
            f"is {len(record.payload)} bytes; at most {MAX_PAYLOAD_BYTES} are stored {where}",
        )
    if not 0 <= record.timestamp_ms <= _MAX_INTEGER:
        raise InvalidRequestError(f"{field}.timestamp_ms", f"must be from 0 to {_MAX_INTEGER} {where}")
    if record.sequence_number is not None and not 0 <= record.sequence_number <= _MAX_INTEGER:
        raise InvalidRequestError(f"{field}.sequence_number", f"must be from 0 to {_MAX_INTEGER} {where}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_document(payload: bytes) -> Any:
    """``payload`` parsed when it is a JSON object or array every store can hold, else None.

    Refused: invalid UTF-8 or JSON, NaN and infinities, lone surrogates and NUL characters (PostgreSQL cannot
    read those back as text), integers too long to parse.
    """
    if not payload.lstrip().startswith(_JSON_OPENERS):
        return None
    try:
        document = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
        canonical = json.dumps(document, ensure_ascii=False, allow_nan=False)
        canonical.encode("utf-8")
    except (UnicodeError, ValueError, RecursionError):
        return None
    # json.dumps escapes a NUL character as \u0000; a text holding that escape literally is refused as well.
    if "\\u0000" in canonical:
        return None
    return document


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return sqlite.insert(TelemetryMessage).on_conflict_do_nothing()
    if dialect == "postgresql":
        return postgresql.insert(TelemetryMessage).on_conflict_do_nothing()
    raise RuntimeError(f"telemetry is stored on SQLite or PostgreSQL, not {dialect}")


def store_records(session: Session, records: Sequence[TelemetryRecord]) -> StoreResult:
    """Store ``records`` in the caller's transaction, each (thing, stream, source, sequence number) once.

    Blocks; call via asyncio.to_thread from the event loop. The caller commits.

    Raises:
        InvalidRequestError: a record breaks a limit (its ``field`` is ``records[<index>].<name>``); nothing is
            written.
    """
    for index, record in enumerate(records):
        _check(record, f"records[{index}]")
    if not records:
        return StoreResult(stored=0, duplicates=0)
    received_at = utcnow()
    rows = [
        {
            "thing_name": record.thing_name,
            "stream": record.stream,
            "topic": record.topic,
            "source": record.source,
            "sequence_number": record.sequence_number,
            "timestamp_ms": record.timestamp_ms,
            "payload": record.payload,
            "payload_json": json_document(record.payload),
            "received_at": received_at,
        }
        for record in records
    ]
    # RETURNING lists only the rows inserted, so what ON CONFLICT skipped is counted exactly, on both engines.
    inserted = session.execute(_insert(session).returning(TelemetryMessage.id), rows).all()
    return StoreResult(stored=len(inserted), duplicates=len(records) - len(inserted))
