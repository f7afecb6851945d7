"""Reading telemetry (SQLite and PostgreSQL): time parameters, filtered pages in ingest order with cursors, pages
cut by size, and stream totals."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.telemetry import TelemetryRecord, store_records
from edgewise.cloud.telemetry.query import (
    MAX_TIMESTAMP_MS,
    MessageFilter,
    check_range,
    list_streams,
    parse_duration,
    parse_instant,
    read_messages,
    to_milliseconds,
)

T0 = 1_764_100_000_000


def store(session: Session, *records: TelemetryRecord) -> None:
    store_records(session, list(records))
    session.commit()


def message(
    offset_ms: int, *, thing: str = "pump-1", stream: str = "line", payload: bytes = b"{}"
) -> TelemetryRecord:
    return TelemetryRecord(thing, stream, T0 + offset_ms, payload)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1764100000000", 1_764_100_000_000),
        ("2026-12-07T06:30:00Z", to_milliseconds(datetime.datetime(2026, 12, 7, 6, 30, tzinfo=datetime.UTC))),
        (
            "2026-12-07T07:30:00+01:00",
            to_milliseconds(datetime.datetime(2026, 12, 7, 6, 30, tzinfo=datetime.UTC)),
        ),
        (
            "2026-12-07T06:30:00.250",
            to_milliseconds(datetime.datetime(2026, 12, 7, 6, 30, tzinfo=datetime.UTC)) + 250,
        ),
        ("2026-12-07", to_milliseconds(datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC))),
    ],
)
def test_instants_are_milliseconds_or_iso_times_utc_without_an_offset(text: str, expected: int) -> None:
    assert parse_instant("since", text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("yesterday", "is neither milliseconds since the epoch nor an ISO 8601 time"),
        ("-5", "is outside 1970-01-01 to 9999-12-31"),
        (str(MAX_TIMESTAMP_MS + 1), "is outside"),
        ("1969-12-31T23:59:59Z", "is outside"),
        ("2026-13-01", "is neither"),
        ("1" * 65, "is too long"),
    ],
)
def test_bad_instants_are_refused_naming_the_parameter(text: str, problem: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_instant("until", text)
    assert caught.value.field == "until"
    assert problem in caught.value.problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", 250),
        ("30s", 30_000),
        ("15m", 900_000),
        ("1h", 3_600_000),
        ("7d", 604_800_000),
        ("2w", 1_209_600_000),
    ],
)
def test_durations_have_a_unit(text: str, expected: int) -> None:
    assert parse_duration("every", text) == expected


@pytest.mark.parametrize("text", ["", "5", "1.5h", "h", "0s", "1y", "-1m", "1 h 2m", "9" * 13 + "s"])
def test_bad_durations_are_refused_naming_the_parameter(text: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_duration("every", text)
    assert caught.value.field == "every"


@given(st.text(max_size=80))
def test_any_text_is_an_instant_in_range_or_refused(text: str) -> None:
    refused_field = None
    try:
        assert 0 <= parse_instant("since", text) <= MAX_TIMESTAMP_MS
    except InvalidRequestError as exc:
        refused_field = exc.field
    assert refused_field in (None, "since")


@given(st.integers(min_value=1, max_value=10**5), st.sampled_from(["ms", "s", "m", "h", "d", "w"]))
def test_a_duration_is_its_amount_times_its_unit(amount: int, unit: str) -> None:
    scale = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}[unit]
    assert parse_duration("every", f"{amount}{unit}") == amount * scale


@given(st.text(max_size=40))
def test_any_text_is_a_positive_duration_or_refused(text: str) -> None:
    refused_field = None
    try:
        assert parse_duration("every", text) >= 1
    except InvalidRequestError as exc:
        refused_field = exc.field
    assert refused_field in (None, "every")


def test_a_range_must_end_after_it_starts() -> None:
    check_range(5, 6)
    check_range(None, 5)
    with pytest.raises(InvalidRequestError, match="'until' is invalid: 5 must be after since"):
        check_range(5, 5)


def test_filters_select_by_thing_stream_and_half_open_range(session: Session) -> None:
    store(
        session,
        message(0),
        message(10),
        message(20),
        message(10, thing="pump-2"),
        message(10, stream="other"),
    )
    selection = MessageFilter(thing="pump-1", stream="line", since=T0 + 10, until=T0 + 20)
    page = read_messages(session, selection)
    assert [(m.thing_name, m.stream, m.timestamp_ms - T0) for m in page.messages] == [("pump-1", "line", 10)]
    assert not page.more
    assert len(read_messages(session, MessageFilter()).messages) == 5
    assert len(read_messages(session, MessageFilter(since=T0 + 10)).messages) == 4


def test_pages_follow_the_cursor_oldest_first_and_newest_first(session: Session) -> None:
    # Ingest order, not timestamp order: a late message with an old timestamp comes last.
    store(session, *(message(offset) for offset in (5, 3, 9, 1, 7, 0)))
    seen: list[int] = []
    cursor = None
    while True:
        page = read_messages(session, MessageFilter(), after=cursor, limit=4)
        seen += [m.id for m in page.messages]
        cursor = page.cursor
        if not page.more:
            break
    assert seen == sorted(seen)
    assert len(seen) == 6
    first = read_messages(session, MessageFilter(), order="newest", limit=4)
    assert first.more
    rest = read_messages(session, MessageFilter(), order="newest", before=first.cursor, limit=4)
    assert not rest.more
    assert [m.id for m in [*first.messages, *rest.messages]] == sorted(seen, reverse=True)
    assert read_messages(session, MessageFilter(), after=max(seen)).cursor is None


def test_a_page_ends_once_its_payloads_pass_the_byte_limit_but_holds_one_message(session: Session) -> None:
    store(session, *(message(offset, payload=b"x" * 100) for offset in range(5)))
    page = read_messages(session, MessageFilter(), max_bytes=250)
    assert len(page.messages) == 2
    assert page.more
    single = read_messages(session, MessageFilter(), max_bytes=10)
    assert len(single.messages) == 1
    assert single.more


def test_streams_are_listed_with_their_totals(session: Session) -> None:
    store(
        session,
        message(0, payload=b"abc"),
        message(50, payload=b"de", thing="pump-2"),
        message(20, payload=b"f"),
        message(30, stream="alpha", payload=b"12345"),
    )
    page = list_streams(session, MessageFilter(), limit=10, offset=0)
    assert page.total == 2
    assert [
        (s.stream, s.messages, s.bytes, s.first_timestamp - T0, s.last_timestamp - T0, s.things)
        for s in page.streams
    ] == [
        ("alpha", 1, 5, 30, 30, 1),
        ("line", 3, 6, 0, 50, 2),
    ]
    ranged = list_streams(session, MessageFilter(since=T0 + 10, until=T0 + 40), limit=10, offset=0)
    assert [(s.stream, s.messages) for s in ranged.streams] == [("alpha", 1), ("line", 1)]
    second = list_streams(session, MessageFilter(), limit=1, offset=1)
    assert (second.total, [s.stream for s in second.streams]) == (2, ["line"])
    assert list_streams(session, MessageFilter(thing="nobody"), limit=10, offset=0).total == 0
