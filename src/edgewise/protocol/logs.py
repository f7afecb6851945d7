"""Logs: a device sends the lines of its runtime's log files to the cloud in batches (docs/runtime.md, "Logs to
the cloud").

The device's log manager publishes a :class:`LogBatch` (QoS 1) on ``$aws/things/<thing>/edgewise/logs/batch``
(:func:`batch_topic`); once the batch is stored the cloud answers on ``.../batch/accepted`` with
:class:`BatchAccepted`, or refuses it on ``.../batch/rejected`` with :class:`BatchRejection` (:func:`reply_topic`),
echoing the batch's ``clientToken``. The cloud reads a batch with :func:`parse_batch`; the device reads a reply
with :func:`read_reply`.

Each entry is one line of one file, named by the file's ``fileId`` (the device's identifier of one file across
renames by rotation) and the line's byte ``offset`` in it. The cloud stores each entry once, keyed by
(thing, fileId, offset): a batch sent twice is stored once.

A batch is at most :data:`MAX_BATCH_BYTES`. :func:`build_batch` writes compact JSON, so its size is known before it
is built: :data:`EMPTY_BATCH_BYTES` (the envelope with the longest allowed token) plus :func:`encoded_entry_size`
of each entry never exceeds the built size, and a single entry whose message is at most
:data:`MAX_MESSAGE_BYTES` (:func:`cut_message`) always fits in a batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from edgewise.errors import EdgewiseError
from edgewise.names import COMPONENT_NAME
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
    "CLIENT_TOKEN_MAX_LENGTH",
    "CUT_MARK",
    "EMPTY_BATCH_BYTES",
    "FILE_ID_MAX_LENGTH",
    "FILE_NAME_MAX_LENGTH",
    "INTERNAL_ERROR",
    "INVALID_PAYLOAD",
    "LEVELS",
    "LOGS_BATCH_FILTER",
    "MAX_BATCH_BYTES",
    "MAX_INTEGER",
    "MAX_MESSAGE_BYTES",
    "REJECTED",
    "SYSTEM",
    "THROTTLED",
    "TOPICS",
    "BatchAccepted",
    "BatchRejection",
    "LogBatch",
    "LogEntry",
    "LogLevel",
    "LogsPayloadError",
    "Outcome",
    "RejectionCode",
    "batch_topic",
    "build_accepted",
    "build_batch",
    "build_rejection",
    "client_token_of",
    "cut_message",
    "encoded_entry_size",
    "parse_batch",
    "read_reply",
    "reply_topic",
    "thing_of_batch",
]

#: What the cloud subscribes to: every thing's log batches.
LOGS_BATCH_FILTER: Final = "$aws/things/+/edgewise/logs/batch"
FILE_ID_MAX_LENGTH: Final = 64
FILE_NAME_MAX_LENGTH: Final = 255
#: A message's UTF-8 bytes; a longer line is cut by :func:`cut_message`.
MAX_MESSAGE_BYTES: Final = 16 * 1024
#: What ends a message that was cut.
CUT_MARK: Final = " [cut]"
#: Offsets and timestamps are signed 64-bit integers in the cloud's store.
MAX_INTEGER: Final = 2**63 - 1
#: The component of the runtime's own log.
SYSTEM: Final = "System"

LogLevel = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
#: The levels, lowest first.
LEVELS: Final[tuple[LogLevel, ...]] = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")

TOPICS: Final = BatchTopics("logs")
_BATCH_FIELDS = ("clientToken", "entries")
_ENTRY_FIELDS = ("component", "file", "fileId", "offset", "timestamp", "level", "message")


class LogsPayloadError(EdgewiseError):
    """A log batch the cloud refuses, answered on ``/rejected`` with code ``InvalidPayload`` and this message,
    which names the field (``entries[3].message``) and the problem."""

    code: Final[RejectionCode] = INVALID_PAYLOAD

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Field {field!r} is invalid: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class LogEntry:
    """One line of one log file."""

    component: str  #: ``System`` for the runtime's own log, else the component's name
    file: str  #: the file's name, e.g. ``edgewise.log`` or ``com.example.Hello.log``
    file_id: str  #: identifies one file across rotations (the device's choice)
    offset: int  #: the byte offset of the line in that file
    timestamp_ms: int | None  #: when the line was written, ms since the epoch, when the line says
    level: LogLevel | None  #: the line's level, when the line says
    message: str  #: the line without its newline, at most MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class LogBatch:
    """Lines bound for the cloud's log store."""

    client_token: str
    entries: tuple[LogEntry, ...]


@dataclass(frozen=True)
class BatchAccepted:
    """The cloud stored a batch: ``stored`` entries were new, ``duplicates`` were already stored."""

    client_token: str
    stored: int
    duplicates: int


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


# -- messages -------------------------------------------------------------------------------------------


def cut_message(text: str) -> str:
    """``text`` when its UTF-8 is at most :data:`MAX_MESSAGE_BYTES`, else its start (cut on a character)
    followed by :data:`CUT_MARK`, within that bound."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= MAX_MESSAGE_BYTES:
        return text
    keep = data[: MAX_MESSAGE_BYTES - len(CUT_MARK.encode())]
    return keep.decode("utf-8", errors="ignore") + CUT_MARK


# -- sizes ----------------------------------------------------------------------------------------------


def _entry_body(entry: LogEntry) -> dict[str, Any]:
    return {
        "component": entry.component,
        "file": entry.file,
        "fileId": entry.file_id,
        "offset": entry.offset,
        "timestamp": entry.timestamp_ms,
        "level": entry.level,
        "message": entry.message,
    }


def _envelope(client_token: str, entries: list[Any]) -> bytes:
    return dumps({"clientToken": client_token, "entries": entries})


#: The bytes of a batch without entries whose token is as long and as escaped as allowed.
EMPTY_BATCH_BYTES: Final = len(_envelope("\x00" * CLIENT_TOKEN_MAX_LENGTH, []))


def encoded_entry_size(entry: LogEntry) -> int:
    """The bytes ``entry`` adds to a batch: its JSON, its separator included."""
    return len(dumps(_entry_body(entry))) + 1


# -- batches --------------------------------------------------------------------------------------------


def build_batch(client_token: str, entries: tuple[LogEntry, ...] | list[LogEntry]) -> bytes:
    """The payload of a batch of ``entries``: compact JSON, at most ``EMPTY_BATCH_BYTES`` plus each entry's
    :func:`encoded_entry_size`."""
    return _envelope(client_token, [_entry_body(entry) for entry in entries])


def _integer(value: Any, field: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INTEGER:
        raise LogsPayloadError(field, f"must be {what}, an integer from 0 to {MAX_INTEGER}")
    return value


def _name(value: Any, field: str, longest: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= longest or "/" in value or "\x00" in value:
        raise LogsPayloadError(field, f"must be a string of 1 to {longest} characters without '/'")
    return value


def _entry(value: Any, field: str) -> LogEntry:
    if not isinstance(value, dict):
        raise LogsPayloadError(field, f"must be an object with {', '.join(_ENTRY_FIELDS)}")
    unknown = sorted(set(value) - set(_ENTRY_FIELDS))
    if unknown:
        raise LogsPayloadError(
            f"{field}.{unknown[0][:80]}", f"is not a field of an entry (it takes {', '.join(_ENTRY_FIELDS)})"
        )
    for name in _ENTRY_FIELDS:
        if name not in value:
            raise LogsPayloadError(f"{field}.{name}", "is required")
    component = value["component"]
    if not isinstance(component, str) or (
        component != SYSTEM and COMPONENT_NAME.fullmatch(component) is None
    ):
        raise LogsPayloadError(
            f"{field}.component",
            f"must be {SYSTEM!r} or a component name (1 to 128 letters, digits and '._-')",
        )
    file = _name(value["file"], f"{field}.file", FILE_NAME_MAX_LENGTH)
    file_id = _name(value["fileId"], f"{field}.fileId", FILE_ID_MAX_LENGTH)
    offset = _integer(value["offset"], f"{field}.offset", "a byte offset")
    timestamp = value["timestamp"]
    if timestamp is not None:
        timestamp = _integer(timestamp, f"{field}.timestamp", "null or milliseconds since the epoch")
    level = value["level"]
    if level is not None and level not in LEVELS:
        raise LogsPayloadError(f"{field}.level", f"must be null or one of {', '.join(LEVELS)}")
    message = value["message"]
    if not isinstance(message, str) or "\n" in message or "\r" in message:
        raise LogsPayloadError(f"{field}.message", "must be one line of text (no line breaks)")
    try:
        size = len(message.encode("utf-8"))
    except UnicodeEncodeError:
        raise LogsPayloadError(f"{field}.message", "is not valid Unicode (a lone surrogate)") from None
    if size > MAX_MESSAGE_BYTES:
        raise LogsPayloadError(
            f"{field}.message", f"is {size} bytes of UTF-8; a message is at most {MAX_MESSAGE_BYTES}"
        )
    return LogEntry(
        component=component,
        file=file,
        file_id=file_id,
        offset=offset,
        timestamp_ms=timestamp,
        level=level,
        message=message,
    )


def parse_batch(payload: bytes) -> LogBatch:
    """Parse and check a log batch.

    Raises:
        LogsPayloadError: naming the field and the problem.
    """
    if len(payload) > MAX_BATCH_BYTES:
        raise LogsPayloadError("payload", f"is {len(payload)} bytes; a batch is at most {MAX_BATCH_BYTES}")
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise LogsPayloadError("payload", f"is not JSON: {str(exc)[:200]}") from None
    if not isinstance(body, dict):
        raise LogsPayloadError("payload", "must be a JSON object")
    unknown = sorted(set(body) - set(_BATCH_FIELDS))
    if unknown:
        raise LogsPayloadError(
            unknown[0][:80], f"is not a field of a batch (it takes {', '.join(_BATCH_FIELDS)})"
        )
    for name in _BATCH_FIELDS:
        if name not in body:
            raise LogsPayloadError(name, "is required")
    token = valid_token(body["clientToken"])
    if token is None:
        raise LogsPayloadError(
            "clientToken", f"must be a string of 1 to {CLIENT_TOKEN_MAX_LENGTH} characters"
        )
    values = body["entries"]
    if not isinstance(values, list) or not values:
        raise LogsPayloadError("entries", "must be a non-empty list of entries")
    entries = tuple(_entry(value, f"entries[{index}]") for index, value in enumerate(values))
    return LogBatch(client_token=token, entries=entries)


# -- replies --------------------------------------------------------------------------------------------


def build_accepted(reply: BatchAccepted) -> bytes:
    """The payload of ``reply``."""
    return dumps({"clientToken": reply.client_token, "stored": reply.stored, "duplicates": reply.duplicates})


def read_reply(topic: str, payload: bytes) -> BatchAccepted | BatchRejection | None:
    """The reply that arrived on ``topic``, or None when it is not a reply this module can read (not a reply
    topic, not a JSON object, an acceptance without its token or counts)."""
    reply = batches.read_reply(TOPICS, topic, payload)
    if reply is None or isinstance(reply, BatchRejection):
        return reply
    token, body = reply
    stored, duplicates = count(body.get("stored")), count(body.get("duplicates"))
    if token is None or stored is None or duplicates is None:
        return None
    return BatchAccepted(token, stored, duplicates)
