"""Storing telemetry: records from exports and device topics go into ``telemetry_messages`` exactly once.

:func:`store_records` is the one way in, used by routing rules and anything else that stores telemetry;
:func:`store_record_groups` does the same for several groups at once (the ingest worker's batches and messages,
in one statement) and counts each group as :func:`store_records` would. Each checks every record before it
writes any, inserts with ``ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL), so a record resent with the same
thing, stream, source and sequence number is counted as a duplicate instead of stored twice, and fills
``payload_json`` when the payload is a JSON object or array. Each runs inside the caller's transaction: the
caller commits, or rolls back and nothing is stored.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import sqlalchemy as sa
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
#: Written through Core: the ORM's bulk insert costs about a hundred microseconds more per statement.
_TABLE: Final = cast(sa.Table, TelemetryMessage.__table__)
#: A payload with fewer openers than this nests too shallowly for encoding it again to hit the recursion limit.
_SHALLOW_OPENERS: Final = 64


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


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"{text[:40]} overflows a float")
    return number


#: One decoder for every payload: ``json.loads`` with hooks would build a new one per call.
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def json_document(payload: bytes) -> Any:
    """``payload`` parsed when it is a JSON object or array every store can hold, else None.

    Refused: invalid UTF-8 or JSON, NaN and infinities, lone surrogates and NUL characters (PostgreSQL cannot
    read those back as text), integers too long to parse.
    """
    if not payload.lstrip().startswith(_JSON_OPENERS):
        return None
    try:
        document = _DECODER.decode(payload.decode("utf-8"))
        # Without a backslash the text has no escape, so no NUL or lone surrogate and no literal "\u0000"; shallow,
        # it encodes again without recursing too deep: encoding it to check (most of the cost) is only needed
        # otherwise.
        if b"\\" in payload or payload.count(b"[") + payload.count(b"{") >= _SHALLOW_OPENERS:
            canonical = json.dumps(document, ensure_ascii=False, allow_nan=False)
            canonical.encode("utf-8")
            # json.dumps escapes a NUL character as \u0000; a text holding that escape literally is refused too.
            if "\\u0000" in canonical:
                return None
    except (UnicodeError, ValueError, RecursionError):
        return None
    return document


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return sqlite.insert(_TABLE).on_conflict_do_nothing()
    if dialect == "postgresql":
        return postgresql.insert(_TABLE).on_conflict_do_nothing()
    raise RuntimeError(f"telemetry is stored on SQLite or PostgreSQL, not {dialect}")


def store_records(session: Session, records: Sequence[TelemetryRecord]) -> StoreResult:
    """Store ``records`` in the caller's transaction, each (thing, stream, source, sequence number) once.

    Blocks; call via asyncio.to_thread from the event loop. The caller commits.

    Raises:
        InvalidRequestError: a record breaks a limit (its ``field`` is ``records[<index>].<name>``); nothing is
            written.
    """
    return store_record_groups(session, [records])[0]


def store_record_groups(session: Session, groups: Sequence[Sequence[TelemetryRecord]]) -> list[StoreResult]:
    """Store every group of ``groups`` in the caller's transaction, in one statement, each (thing, stream,
    source, sequence number) once; what each group stored, in order, as if each were stored with
    :func:`store_records` one after the other (a record that an earlier group holds too is its duplicate).

    Blocks; call via asyncio.to_thread from the event loop. The caller commits.

    Raises:
        InvalidRequestError: a record breaks a limit (its ``field`` is ``records[<index>].<name>``, the index in
            its group); nothing is written.
    """
    for records in groups:
        for index, record in enumerate(records):
            _check(record, f"records[{index}]")
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
        for records in groups
        for record in records
    ]
    if not rows:
        return [StoreResult(stored=0, duplicates=0) for _ in groups]
    columns = _TABLE.c
    key = (columns.thing_name, columns.stream, columns.source, columns.sequence_number)
    # RETURNING lists only the rows inserted, so what ON CONFLICT skipped is counted exactly, on both engines.
    inserted = Counter(
        tuple(row) for row in session.connection().execute(_insert(session).returning(*key), rows)
    )
    results = []
    for records in groups:
        stored = 0
        for record in records:
            row_key = (record.thing_name, record.stream, record.source, record.sequence_number)
            # Each inserted row is claimed by one record: the first with its key, as the database kept it.
            if inserted[row_key] > 0:
                inserted[row_key] -= 1
                stored += 1
        results.append(StoreResult(stored=stored, duplicates=len(records) - stored))
    return results
