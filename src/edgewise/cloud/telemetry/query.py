"""Reading stored telemetry: time parameters, pages of messages, and the streams with their totals.

Times are milliseconds since the Unix epoch (UTC) everywhere; :func:`parse_instant` also takes ISO 8601 and
:func:`parse_duration` takes ``250ms``, ``30s``, ``15m``, ``1h``, ``7d``. A range is ``since <= timestamp <
until``, on the timestamp the device gave the message.

Pages are in the order of ingest (the row id), which is also the cursor: a page oldest first continues with
``after`` = its last id, newest first with ``before`` = its last id. A message ingested late, with an old
timestamp, still gets a new id, so a tail that follows ``after`` never misses it. A page ends at ``limit``
messages or once its payloads pass :data:`PAGE_MAX_BYTES`, whichever comes first; ``more`` says whether it was
cut. Functions here block; routes call them in FastAPI's thread pool.
"""

from __future__ import annotations

import contextlib
import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.telemetry.models import TelemetryMessage

#: The latest instant accepted: the end of year 9999, so every accepted time is also a valid datetime.
MAX_TIMESTAMP_MS = 253_402_300_799_999
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
#: A page stops growing once its payloads add up to this much (it always holds at least one message).
PAGE_MAX_BYTES = 8 * 1024 * 1024
MAX_TIME_TEXT = 64

DURATION_PATTERN = r"^[0-9]{1,12}(ms|s|m|h|d|w)$"
_DURATION = re.compile(r"(?P<amount>[0-9]{1,12})(?P<unit>ms|s|m|h|d|w)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DIGITS = re.compile(r"-?[0-9]+")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

Order = Literal["oldest", "newest"]


def parse_duration(field: str, text: str) -> int:
    """``text`` (an amount and a unit: ms, s, m, h, d or w, e.g. ``15m``) in milliseconds, at least 1.

    Raises:
        InvalidRequestError: ``text`` is not such a duration; the error names ``field``.
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        shown = text if len(text) <= MAX_TIME_TEXT else text[:MAX_TIME_TEXT] + "..."
        raise InvalidRequestError(
            field,
            f"{shown!r} is not a duration: give a whole number and a unit, e.g. 500ms, 30s, 15m, 1h, 7d, 2w",
        )
    milliseconds = int(match["amount"]) * _UNIT_MS[match["unit"]]
    if not 1 <= milliseconds <= MAX_TIMESTAMP_MS:
        raise InvalidRequestError(
            field, f"{text!r} must be between 1ms and {MAX_TIMESTAMP_MS // 86_400_000}d"
        )
    return milliseconds


def parse_instant(field: str, text: str) -> int:
    """``text`` as milliseconds since the epoch: an integer of milliseconds, or an ISO 8601 date or time
    (``2026-12-07``, ``2026-12-07T06:30:00Z``, ``...+01:00``; without an offset, UTC).

    Raises:
        InvalidRequestError: ``text`` is neither, or lies before 1970 or after 9999; the error names ``field``.
    """
    value = text.strip()
    shown = value if len(value) <= MAX_TIME_TEXT else value[:MAX_TIME_TEXT] + "..."
    if len(value) > MAX_TIME_TEXT:
        raise InvalidRequestError(
            field, f"{shown!r} is too long to be a time (at most {MAX_TIME_TEXT} characters)"
        )
    if _DIGITS.fullmatch(value):
        milliseconds = int(value)
    else:
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequestError(
                field,
                f"{shown!r} is neither milliseconds since the epoch nor an ISO 8601 time such as"
                " 2026-12-07T06:30:00Z",
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        milliseconds = to_milliseconds(moment)
    if not 0 <= milliseconds <= MAX_TIMESTAMP_MS:
        raise InvalidRequestError(field, f"{shown!r} is outside 1970-01-01 to 9999-12-31")
    return milliseconds


def check_range(since: int | None, until: int | None) -> None:
    """Refuse a range that ends before it starts.

    Raises:
        InvalidRequestError: ``until`` is not after ``since``; the error names ``until``.
    """
    if since is not None and until is not None and until <= since:
        raise InvalidRequestError(
            "until", f"{until} must be after since ({since}); the range is since <= t < until"
        )


def to_milliseconds(moment: datetime.datetime) -> int:
    """The aware ``moment`` in whole milliseconds since the epoch."""
    return (moment - _EPOCH) // datetime.timedelta(milliseconds=1)


@dataclass(frozen=True)
class MessageFilter:
    """Which messages a query reads: all of them when every field is None."""

    thing: str | None = None
    stream: str | None = None
    since: int | None = None
    until: int | None = None

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        """The SQL conditions of this filter."""
        conditions: list[sa.ColumnElement[bool]] = []
        if self.thing is not None:
            conditions.append(TelemetryMessage.thing_name == self.thing)
        if self.stream is not None:
            conditions.append(TelemetryMessage.stream == self.stream)
        if self.since is not None:
            conditions.append(TelemetryMessage.timestamp_ms >= self.since)
        if self.until is not None:
            conditions.append(TelemetryMessage.timestamp_ms < self.until)
        return conditions


@dataclass(frozen=True)
class MessagePage:
    """Messages in cursor order; ``more`` when the page was cut by its limit or its size."""

    messages: Sequence[TelemetryMessage]
    more: bool

    @property
    def cursor(self) -> int | None:
        """The id to continue from (``after`` oldest first, ``before`` newest first); None when empty."""
        return self.messages[-1].id if self.messages else None


def read_messages(
    session: Session,
    selection: MessageFilter,
    *,
    order: Order = "oldest",
    after: int | None = None,
    before: int | None = None,
    limit: int = DEFAULT_LIMIT,
    max_bytes: int = PAGE_MAX_BYTES,
) -> MessagePage:
    """One page of the messages ``selection`` matches, with ids above ``after`` and below ``before``."""
    statement = sa.select(TelemetryMessage).where(*selection.conditions())
    if after is not None:
        statement = statement.where(TelemetryMessage.id > after)
    if before is not None:
        statement = statement.where(TelemetryMessage.id < before)
    key = TelemetryMessage.id.asc() if order == "oldest" else TelemetryMessage.id.desc()
    # One row more than the limit tells whether the page was cut; rows are streamed so that a page cut by size
    # never loads the rest.
    statement = statement.order_by(key).limit(limit + 1).execution_options(yield_per=min(limit + 1, 500))
    messages: list[TelemetryMessage] = []
    size = 0
    more = False
    # Closed explicitly: a page cut short leaves PostgreSQL's server-side cursor open otherwise.
    with contextlib.closing(session.scalars(statement)) as rows:
        for message in rows:
            if len(messages) == limit or (messages and size + len(message.payload) > max_bytes):
                more = True
                break
            messages.append(message)
            size += len(message.payload)
    return MessagePage(messages, more)


@dataclass(frozen=True)
class StreamTotals:
    """What is stored of one stream (within a filter's range)."""

    stream: str
    messages: int
    bytes: int
    first_timestamp: int
    last_timestamp: int
    things: int


@dataclass(frozen=True)
class StreamPage:
    """Streams by name, and how many match in all."""

    streams: Sequence[StreamTotals]
    total: int


def list_streams(session: Session, selection: MessageFilter, *, limit: int, offset: int) -> StreamPage:
    """The streams with messages that ``selection`` matches, by name, each with its totals."""
    conditions = selection.conditions()
    total = session.scalar(sa.select(sa.func.count(sa.distinct(TelemetryMessage.stream))).where(*conditions))
    rows = session.execute(
        sa.select(
            TelemetryMessage.stream,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.func.length(TelemetryMessage.payload)), 0),
            sa.func.min(TelemetryMessage.timestamp_ms),
            sa.func.max(TelemetryMessage.timestamp_ms),
            sa.func.count(sa.distinct(TelemetryMessage.thing_name)),
        )
        .where(*conditions)
        .group_by(TelemetryMessage.stream)
        .order_by(TelemetryMessage.stream)
        .limit(limit)
        .offset(offset)
    ).all()
    streams = [
        StreamTotals(
            stream=stream,
            messages=int(messages),
            bytes=int(size),
            first_timestamp=int(first),
            last_timestamp=int(last),
            things=int(things),
        )
        for stream, messages, size, first, last, things in rows
    ]
    return StreamPage(streams, int(total or 0))
