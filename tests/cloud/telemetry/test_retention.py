"""Telemetry retention (SQLite and PostgreSQL): rules per stream, deletion by age and by size in bounded chunks,
the cloud-wide default age, and the worker on an injected clock."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.db import create_database_engine, create_session_factory
from edgewise.cloud.errors import InvalidRequestError, NotFoundError
from edgewise.cloud.preparation import ServerOptions, prepare
from edgewise.cloud.telemetry import TelemetryMessage, TelemetryRecord, store_records
from edgewise.cloud.telemetry.query import to_milliseconds
from edgewise.cloud.telemetry.retention import (
    RetentionReport,
    RetentionWorker,
    delete_retention,
    enforce,
    list_retention,
    set_retention,
)
from tests.support.waiting import eventually

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
NOW_MS = to_milliseconds(NOW)
HOUR_MS = 3_600_000


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_database_engine(database_url)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()


def store(sessions: sessionmaker[Session], stream: str, *ages_hours: float, size: int = 10) -> None:
    with sessions() as session:
        store_records(
            session,
            [
                TelemetryRecord("pump-1", stream, NOW_MS - int(age * HOUR_MS), b"x" * size)
                for age in ages_hours
            ],
        )
        session.commit()


def kept(sessions: sessionmaker[Session], stream: str) -> list[float]:
    """The ages in hours of ``stream``'s messages, oldest first."""
    with sessions() as session:
        stamps = session.scalars(
            sa.select(TelemetryMessage.timestamp_ms)
            .where(TelemetryMessage.stream == stream)
            .order_by(TelemetryMessage.timestamp_ms)
        )
        return [(NOW_MS - stamp) / HOUR_MS for stamp in stamps]


def rule(
    sessions: sessionmaker[Session], stream: str, *, age_s: int | None = None, size: int | None = None
) -> None:
    with sessions() as session:
        set_retention(session, stream, max_age_seconds=age_s, max_bytes=size, now=NOW)


def test_rules_are_set_replaced_listed_and_deleted(session: Session) -> None:
    set_retention(session, "dt/pump-1/t", max_age_seconds=60, max_bytes=None, now=NOW)
    set_retention(session, "alpha", max_age_seconds=None, max_bytes=1000, now=NOW)
    later = NOW + datetime.timedelta(minutes=1)
    set_retention(session, "alpha", max_age_seconds=5, max_bytes=None, now=later)
    listed = [(r.stream, r.max_age_seconds, r.max_bytes, r.updated_at) for r in list_retention(session)]
    assert listed == [("alpha", 5, None, later), ("dt/pump-1/t", 60, None, NOW)]
    delete_retention(session, "alpha")
    assert [r.stream for r in list_retention(session)] == ["dt/pump-1/t"]
    with pytest.raises(NotFoundError, match="Retention of stream 'alpha' does not exist"):
        delete_retention(session, "alpha")


@pytest.mark.parametrize("stream", ["", "x" * 257, "bad\nname"])
def test_bad_stream_names_are_refused(session: Session, stream: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        set_retention(session, stream, max_age_seconds=1, max_bytes=None, now=NOW)
    assert caught.value.field == "stream"


def test_messages_older_than_the_max_age_are_deleted_in_chunks(sessions: sessionmaker[Session]) -> None:
    store(sessions, "line", *[5.0 + n / 10 for n in range(7)], 1.5, 0.5)
    store(sessions, "other", 9.0)
    rule(sessions, "line", age_s=2 * 3600)
    report = enforce(sessions, now=NOW, chunk=2)
    assert report == RetentionReport(deleted_by_age=7, deleted_by_size=0)
    assert kept(sessions, "line") == [1.5, 0.5]
    assert kept(sessions, "other") == [9.0]
    assert enforce(sessions, now=NOW, chunk=2) == RetentionReport()


def test_the_oldest_messages_beyond_the_max_bytes_are_deleted(sessions: sessionmaker[Session]) -> None:
    store(sessions, "line", 1.0, 5.0, 3.0, 4.0, 2.0, size=10)
    rule(sessions, "line", size=25)
    assert enforce(sessions, now=NOW, chunk=2) == RetentionReport(deleted_by_size=3)
    assert kept(sessions, "line") == [2.0, 1.0]
    rule(sessions, "line", size=20)
    assert enforce(sessions, now=NOW) == RetentionReport()


def test_age_then_size_both_apply(sessions: sessionmaker[Session]) -> None:
    store(sessions, "line", 10.0, 3.0, 2.0, 1.0, size=10)
    rule(sessions, "line", age_s=5 * 3600, size=15)
    assert enforce(sessions, now=NOW) == RetentionReport(deleted_by_age=1, deleted_by_size=2)
    assert kept(sessions, "line") == [1.0]


def test_the_default_age_applies_to_streams_without_an_age_of_their_own(
    sessions: sessionmaker[Session],
) -> None:
    store(sessions, "plain", 30.0, 1.0)
    store(sessions, "sized", 30.0, 1.0)
    store(sessions, "longer", 30.0, 1.0)
    rule(sessions, "sized", size=1000)
    rule(sessions, "longer", age_s=48 * 3600)
    assert enforce(sessions, now=NOW) == RetentionReport()
    report = enforce(sessions, now=NOW, default_max_age_seconds=24 * 3600)
    assert report.deleted_by_age == 2
    assert (kept(sessions, "plain"), kept(sessions, "sized"), kept(sessions, "longer")) == (
        [1.0],
        [1.0],
        [30.0, 1.0],
    )


def test_a_pass_stops_between_chunks_when_asked(sessions: sessionmaker[Session]) -> None:
    store(sessions, "line", *[5.0 + n for n in range(6)])
    rule(sessions, "line", age_s=3600)
    calls: list[int] = []

    def stopping() -> bool:
        calls.append(1)
        return len(calls) > 1

    assert enforce(sessions, now=NOW, chunk=2, stopping=stopping) == RetentionReport(deleted_by_age=2)
    assert len(kept(sessions, "line")) == 4


async def test_the_worker_enforces_at_start_and_on_its_clock(sessions: sessionmaker[Session]) -> None:
    store(sessions, "line", 30.0, 1.0)
    store(sessions, "other", 30.0)
    rule(sessions, "line", age_s=2 * 3600)
    worker = RetentionWorker(sessions, interval=3600, default_max_age_seconds=40 * 3600, clock=lambda: NOW)
    await worker.start()
    try:
        await eventually(lambda: worker.statistics().passes >= 1, what="the first retention pass")
        assert worker.statistics().deleted == 1
        assert worker.statistics().failed_passes == 0
        assert kept(sessions, "line") == [1.0]
        assert kept(sessions, "other") == [30.0]
    finally:
        await worker.close()
    await worker.close()


async def test_a_worker_never_started_closes(sessions: sessionmaker[Session]) -> None:
    await RetentionWorker(sessions).close()


def test_cloud_up_options_reach_the_retention_settings(tmp_path: Path) -> None:
    options = ServerOptions(
        data_dir=tmp_path / "cloud",
        telemetry_default_max_age_seconds=30 * 86_400,
        telemetry_retention_interval_seconds=5.0,
    )
    settings = prepare(options).settings
    assert (settings.telemetry_default_max_age_seconds, settings.telemetry_retention_interval_seconds) == (
        30 * 86_400,
        5.0,
    )
