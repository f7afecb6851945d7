"""Device log storage and reads on SQLite and PostgreSQL: each (thing, file id, offset) stored once, pages in
arrival order with the ``after`` cursor, filters by component, level and time (a line without a time placed at
its arrival), the components' totals, and retention by age in bounded chunks."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.db import create_database_engine, create_session_factory
from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.logs import DeviceLog
from edgewise.cloud.logs.retention import prune
from edgewise.cloud.logs.service import (
    LogFilter,
    LogLine,
    StoreResult,
    list_components,
    read_logs,
    store_line_groups,
    store_lines,
)

T0 = 1_764_100_000_000


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_database_engine(database_url)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()


def line(
    offset: int,
    *,
    component: str = "com.example.Hello",
    timestamp: int | None = T0,
    level: str | None = "INFO",
    thing: str = "pump-1",
    file_id: str = "f1",
    message: str | None = None,
) -> LogLine:
    return LogLine(
        thing_name=thing,
        component=component,
        file=f"{component}.log",
        file_id=file_id,
        offset=offset,
        timestamp_ms=timestamp,
        level=level,
        message=message if message is not None else f"line at {offset}",
    )


def store(sessions: sessionmaker[Session], *lines: LogLine) -> StoreResult:
    with sessions.begin() as session:
        return store_lines(session, lines)


def offsets(sessions: sessionmaker[Session], selection: LogFilter) -> list[int]:
    with sessions() as session:
        return [stored.offset for stored in read_logs(session, selection).lines]


def test_each_line_is_stored_once_by_thing_file_and_offset(sessions: sessionmaker[Session]) -> None:
    assert store(sessions, line(0), line(10), line(20)) == StoreResult(stored=3, duplicates=0)
    # Resent, with another thing's line at the same offset and a rotated file (new id) at offset 0.
    assert store(
        sessions, line(10), line(20), line(10, thing="pump-2"), line(0, file_id="f2")
    ) == StoreResult(stored=2, duplicates=2)
    with sessions.begin() as session:
        results = store_line_groups(session, [[line(30), line(40)], [line(40), line(50)], []])
    assert results == [StoreResult(2, 0), StoreResult(1, 1), StoreResult(0, 0)]
    with sessions() as session:
        rows = session.scalars(sa.select(DeviceLog).order_by(DeviceLog.id)).all()
    assert [(row.thing_name, row.file_id, row.offset) for row in rows] == [
        ("pump-1", "f1", 0),
        ("pump-1", "f1", 10),
        ("pump-1", "f1", 20),
        ("pump-2", "f1", 10),
        ("pump-1", "f2", 0),
        ("pump-1", "f1", 30),
        ("pump-1", "f1", 40),
        ("pump-1", "f1", 50),
    ]
    assert (rows[0].component, rows[0].file, rows[0].level, rows[0].timestamp_ms) == (
        "com.example.Hello",
        "com.example.Hello.log",
        "INFO",
        T0,
    )


def test_a_nul_character_is_stored_as_a_replacement_character(sessions: sessionmaker[Session]) -> None:
    store(sessions, line(0, message="a\x00b"), line(1, level=None, timestamp=None))
    with sessions() as session:
        rows = read_logs(session, LogFilter(thing="pump-1")).lines
    assert [(row.message, row.level, row.timestamp_ms) for row in rows] == [
        ("a\ufffdb", "INFO", T0),
        ("line at 1", None, None),
    ]


def test_pages_follow_the_after_cursor_and_filters_narrow_them(sessions: sessionmaker[Session]) -> None:
    levels = ["DEBUG", "INFO", "WARN", "ERROR", None]
    store(
        sessions,
        *(line(n, timestamp=T0 + n * 1000, level=levels[n % 5]) for n in range(10)),
        line(100, component="System", timestamp=T0),
        line(0, thing="pump-2"),
    )
    everything = LogFilter(thing="pump-1")
    with sessions() as session:
        first = read_logs(session, everything, limit=4)
        assert ([row.offset for row in first.lines], first.more) == ([0, 1, 2, 3], True)
        second = read_logs(session, everything, after=first.cursor, limit=4)
        assert [row.offset for row in second.lines] == [4, 5, 6, 7]
        last = read_logs(session, everything, after=second.cursor, limit=4)
        assert ([row.offset for row in last.lines], last.more) == ([8, 9, 100], False)
        empty = read_logs(session, everything, after=last.cursor)
        assert (empty.lines, empty.cursor, empty.more) == ([], None, False)
    assert offsets(sessions, LogFilter(thing="pump-1", component="System")) == [100]
    assert offsets(sessions, LogFilter(thing="pump-1", level="WARN")) == [2, 3, 7, 8]
    assert offsets(sessions, LogFilter(thing="pump-1", level="error")) == [3, 8]
    assert offsets(sessions, LogFilter(thing="pump-1", since=T0 + 3000, until=T0 + 6000)) == [3, 4, 5]
    assert offsets(sessions, LogFilter(thing="pump-2")) == [0]
    # A page always holds a line, and stops before the characters it holds pass the bound.
    with sessions() as session:
        page = read_logs(session, everything, max_characters=1)
    assert ([row.offset for row in page.lines], page.more) == ([0], True)
    with pytest.raises(InvalidRequestError, match="level") as caught:
        LogFilter(thing="pump-1", level="LOUD").conditions()
    assert caught.value.field == "level"


def test_a_line_without_a_time_is_placed_at_its_arrival(sessions: sessionmaker[Session]) -> None:
    store(sessions, line(0, timestamp=None), line(1, timestamp=T0))
    with sessions.begin() as session:
        session.execute(
            sa.update(DeviceLog)
            .where(DeviceLog.offset == 0)
            .values(received_at=datetime.datetime.fromtimestamp((T0 + 5000) / 1000, datetime.UTC))
        )
    assert offsets(sessions, LogFilter(thing="pump-1", since=T0 + 1)) == [0]
    assert offsets(sessions, LogFilter(thing="pump-1", until=T0 + 1)) == [1]


def test_components_are_listed_with_their_lines_and_last_times(sessions: sessionmaker[Session]) -> None:
    store(
        sessions,
        line(0, timestamp=T0),
        line(1, timestamp=T0 + 7),
        line(2, component="System", timestamp=None),
        line(3, thing="pump-2", component="Other"),
    )
    with sessions() as session:
        totals = list_components(session, "pump-1")
    assert [(total.component, total.lines, total.last_timestamp) for total in totals] == [
        ("System", 1, None),
        ("com.example.Hello", 2, T0 + 7),
    ]
    assert all(total.last_received_at.tzinfo is not None for total in totals)


def test_retention_deletes_lines_older_than_the_age_in_chunks(sessions: sessionmaker[Session]) -> None:
    now = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
    store(sessions, *(line(n) for n in range(7)))
    with sessions.begin() as session:
        for n in range(7):
            session.execute(
                sa.update(DeviceLog)
                .where(DeviceLog.offset == n)
                .values(received_at=now - datetime.timedelta(hours=n))
            )
    assert prune(sessions, now=now, max_age_seconds=2 * 3600 + 1, chunk=2) == 4
    assert offsets(sessions, LogFilter(thing="pump-1")) == [0, 1, 2]
    assert prune(sessions, now=now, max_age_seconds=2 * 3600 + 1, chunk=2) == 0
    # Stopping ends the pass before its first chunk.
    assert prune(sessions, now=now, max_age_seconds=1, stopping=lambda: True) == 0
