"""Storing and reading device logs: lines go into ``device_logs`` once each, and are read back in pages.

:func:`store_line_groups` inserts with ``ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL) in the caller's
transaction, so a line resent with the same thing, file id and offset counts as a duplicate instead of being
stored twice.

Reads page in the order of arrival (the row id), which is also the cursor: a page continues with ``after`` = its
last id, so a follower that polls with ``after`` never misses a line that arrives late with an old timestamp.
A time range (``since <= t < until``) is on the time the line gives; a line that gives none is placed at the
time the cloud received it. A level filter keeps that level and the more severe ones, and drops lines without a
level. Functions here block; routes call them in FastAPI's thread pool.
"""

from __future__ import annotations

import contextlib
import datetime
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.logs.models import DeviceLog

#: Log levels from the least to the most severe.
LEVELS: Final = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
#: A page stops growing once its messages add up to this many characters (it always holds at least one line).
PAGE_MAX_CHARACTERS: Final = 4 * 1024 * 1024
_TABLE: Final = cast(sa.Table, DeviceLog.__table__)
_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@dataclass(frozen=True)
class LogLine:
    """One line to store."""

    thing_name: str
    component: str
    file: str
    file_id: str
    offset: int
    timestamp_ms: int | None
    level: str | None
    message: str


@dataclass(frozen=True)
class StoreResult:
    """What one group stored: ``stored`` lines were new, ``duplicates`` were stored before."""

    stored: int
    duplicates: int


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return sqlite.insert(_TABLE).on_conflict_do_nothing()
    if dialect == "postgresql":
        return postgresql.insert(_TABLE).on_conflict_do_nothing()
    raise RuntimeError(f"device logs are stored on SQLite or PostgreSQL, not {dialect}")


def _row(line: LogLine, received_at: datetime.datetime) -> dict[str, Any]:
    # PostgreSQL refuses NUL characters in text; a log line never needs one.
    return {
        "thing_name": line.thing_name,
        "component": line.component,
        "file": line.file,
        "file_id": line.file_id,
        "offset": line.offset,
        "timestamp_ms": line.timestamp_ms,
        "level": line.level,
        "message": line.message.replace("\x00", "\ufffd"),
        "received_at": received_at,
    }


def store_line_groups(session: Session, groups: Sequence[Sequence[LogLine]]) -> list[StoreResult]:
    """Store every group in the caller's transaction, in one statement, each (thing, file id, offset) once; what
    each group stored, in order (a line an earlier group holds too is a duplicate of this one). The caller
    commits. Blocks."""
    received_at = utcnow()
    rows = [_row(line, received_at) for lines in groups for line in lines]
    if not rows:
        return [StoreResult(0, 0) for _ in groups]
    columns = _TABLE.c
    key = (columns.thing_name, columns.file_id, columns.offset)
    # RETURNING lists only the rows inserted, so what ON CONFLICT skipped is counted exactly, on both engines.
    inserted = Counter(
        tuple(row) for row in session.connection().execute(_insert(session).returning(*key), rows)
    )
    results = []
    for lines in groups:
        stored = 0
        for line in lines:
            row_key = (line.thing_name, line.file_id, line.offset)
            if inserted[row_key] > 0:
                inserted[row_key] -= 1
                stored += 1
        results.append(StoreResult(stored=stored, duplicates=len(lines) - stored))
    return results


def store_lines(session: Session, lines: Sequence[LogLine]) -> StoreResult:
    """Store ``lines`` in the caller's transaction, each (thing, file id, offset) once. Blocks."""
    return store_line_groups(session, [lines])[0]


def levels_from(level: str) -> tuple[str, ...]:
    """``level`` and the more severe levels.

    Raises:
        InvalidRequestError: ``level`` is not one of :data:`LEVELS`; the error names ``level``.
    """
    name = level.upper()
    if name not in LEVELS:
        raise InvalidRequestError("level", f"{level[:20]!r} is not a level: give one of {', '.join(LEVELS)}")
    return LEVELS[LEVELS.index(name) :]


@dataclass(frozen=True)
class LogFilter:
    """Which lines of one thing a read returns: all of them when every other field is None."""

    thing: str
    component: str | None = None
    since: int | None = None
    until: int | None = None
    level: str | None = None

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        """The SQL conditions of this filter."""
        conditions: list[sa.ColumnElement[bool]] = [DeviceLog.thing_name == self.thing]
        if self.component is not None:
            conditions.append(DeviceLog.component == self.component)
        if self.since is not None:
            conditions.append(_at_or_after(self.since))
        if self.until is not None:
            conditions.append(sa.not_(_at_or_after(self.until)))
        if self.level is not None:
            conditions.append(DeviceLog.level.in_(levels_from(self.level)))
        return conditions


def _at_or_after(instant_ms: int) -> sa.ColumnElement[bool]:
    moment = _EPOCH + datetime.timedelta(milliseconds=instant_ms)
    return sa.or_(
        DeviceLog.timestamp_ms >= instant_ms,
        sa.and_(DeviceLog.timestamp_ms.is_(None), DeviceLog.received_at >= moment),
    )


@dataclass(frozen=True)
class LogPage:
    """Lines in arrival order; ``more`` when the page was cut by its limit or its size."""

    lines: Sequence[DeviceLog]
    more: bool

    @property
    def cursor(self) -> int | None:
        """The id to continue from with ``after``; None when the page is empty."""
        return self.lines[-1].id if self.lines else None


def read_logs(
    session: Session,
    selection: LogFilter,
    *,
    after: int | None = None,
    limit: int = DEFAULT_LIMIT,
    max_characters: int = PAGE_MAX_CHARACTERS,
) -> LogPage:
    """One page of the lines ``selection`` matches with ids above ``after``, oldest first."""
    statement = sa.select(DeviceLog).where(*selection.conditions())
    if after is not None:
        statement = statement.where(DeviceLog.id > after)
    # One row more than the limit tells whether the page was cut.
    statement = statement.order_by(DeviceLog.id).limit(limit + 1).execution_options(yield_per=limit + 1)
    lines: list[DeviceLog] = []
    size = 0
    more = False
    # Closed explicitly: a page cut short leaves PostgreSQL's server-side cursor open otherwise.
    with contextlib.closing(session.scalars(statement)) as rows:
        for line in rows:
            if len(lines) == limit or (lines and size + len(line.message) > max_characters):
                more = True
                break
            lines.append(line)
            size += len(line.message)
    return LogPage(lines, more)


@dataclass(frozen=True)
class ComponentTotals:
    """What is stored of one component's logs on one thing."""

    component: str
    lines: int
    last_timestamp: int | None  #: the latest time a line gives; None when none gives one
    last_received_at: datetime.datetime


def list_components(session: Session, thing: str) -> list[ComponentTotals]:
    """The components ``thing`` has logs of, by name, with their totals."""
    rows = session.execute(
        sa.select(
            DeviceLog.component,
            sa.func.count(),
            sa.func.max(DeviceLog.timestamp_ms),
            sa.func.max(DeviceLog.received_at),
        )
        .where(DeviceLog.thing_name == thing)
        .group_by(DeviceLog.component)
        .order_by(DeviceLog.component)
    ).all()
    return [
        ComponentTotals(
            component=component,
            lines=int(count),
            last_timestamp=None if last is None else int(last),
            last_received_at=received,
        )
        for component, count, last, received in rows
    ]
