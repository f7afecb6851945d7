"""Downsampling a JSON field (SQLite and PostgreSQL): field paths and their errors, buckets computed in SQL equal to
the same statistics computed here, rows without a number skipped and counted, and the bound on buckets."""

from __future__ import annotations

import json
import statistics
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.telemetry import TelemetryRecord, store_records
from edgewise.cloud.telemetry.query import MessageFilter
from edgewise.cloud.telemetry.series import (
    MAX_BUCKETS,
    MAX_DEPTH,
    Bucket,
    FieldPath,
    bucket_count,
    check_buckets,
    downsample,
    parse_field,
)

T0 = 1_764_100_000_000
MINUTE = 60_000


def store(session: Session, *records: TelemetryRecord) -> None:
    store_records(session, list(records))
    session.commit()


def reading(offset_ms: int, payload: Any, *, thing: str = "pump-1", stream: str = "line") -> TelemetryRecord:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return TelemetryRecord(thing, stream, T0 + offset_ms, raw)


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("temperature", ("temperature",)),
        ("a.b[0].c", ("a", "b", 0, "c")),
        ("[2].value", (2, "value")),
        ("m[1][0]", ("m", 1, 0)),
        ("sensor-1.x_y", ("sensor-1", "x_y")),
    ],
)
def test_field_paths_are_keys_and_indexes(text: str, steps: tuple[str | int, ...]) -> None:
    path = parse_field(text)
    assert path.steps == steps
    assert str(path) == text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ("a..b", "expected a key (letters, digits, '_', '-') or '[index]' at position 3, found '.'"),
        ("a.", "at position 3, found the end"),
        ("a b", "expected '.' or '[' at position 2, found ' '"),
        (".a", "at position 1, found '.'"),
        ("a[x]", "the '[' at position 2 must start an index such as [0]"),
        ("a[01]", "the '[' at position 2 must start an index"),
        ("a[1", "the '[' at position 2 must start an index"),
        ("a[99999999999]", "index 99999999999 at position 3 is above"),
        ("a$", "at position 2, found '$'"),
        ("x" * 300, "is 300 characters long"),
        (".".join(["k"] * (MAX_DEPTH + 1)), f"more than {MAX_DEPTH} steps"),
    ],
)
def test_bad_field_paths_say_which_part_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_field(text)
    assert caught.value.field == "field"
    assert problem in caught.value.problem


_STEPS = st.lists(
    st.one_of(st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True), st.integers(0, 10**6)),
    min_size=1,
    max_size=8,
)


@given(_STEPS)
def test_a_rendered_path_parses_back_to_its_steps(steps: list[str | int]) -> None:
    assert parse_field(str(FieldPath(tuple(steps)))).steps == tuple(steps)


@given(st.text(max_size=60))
def test_any_text_is_a_path_or_refused_naming_the_field(text: str) -> None:
    refused_field = None
    try:
        assert str(parse_field(text)) == text
    except InvalidRequestError as exc:
        refused_field = exc.field
    assert refused_field in (None, "field")


def test_buckets_are_bounded() -> None:
    assert bucket_count(0, 60_000, 60_000) == 1
    assert bucket_count(0, 60_001, 60_000) == 2
    check_buckets(0, MAX_BUCKETS * 1000, 1000)
    with pytest.raises(InvalidRequestError, match="'every' is invalid: 1000ms makes 10001 buckets"):
        check_buckets(0, MAX_BUCKETS * 1000 + 1, 1000)


def expected_buckets(values: dict[int, list[float]]) -> list[Bucket]:
    return [
        Bucket(
            start=T0 + index * MINUTE,
            count=len(numbers),
            mean=statistics.fmean(numbers),
            min=min(numbers),
            max=max(numbers),
        )
        for index, numbers in sorted(values.items())
    ]


def test_a_field_is_downsampled_in_sql_as_computed_here(session: Session) -> None:
    values = {0: [1.0, 2.0, 4.5], 2: [-3.0], 3: [10.0, 20.0]}
    store(
        session,
        *(
            reading(index * MINUTE + n * 1000, {"m": {"t": value}})
            for index, numbers in values.items()
            for n, value in enumerate(numbers)
        ),
        reading(1000, {"m": {"t": "warm"}}),  # a string
        reading(2000, {"m": {}}),  # missing
        reading(3000, {"m": {"t": None}}),  # null
        reading(4000, {"m": {"t": [1]}}),  # an array
        reading(5000, b"21.5"),  # not a JSON object
        reading(6000, {"m": {"t": True}}),  # a boolean is not a number
        reading(MINUTE, {"m": {"t": 7}}, thing="pump-2"),
        reading(5 * MINUTE, {"m": {"t": 99}}),  # after until
        reading(-1, {"m": {"t": 99}}),  # before since
        reading(MINUTE, {"m": {"t": 99}}, stream="other"),
    )
    selection = MessageFilter(thing="pump-1", stream="line", since=T0, until=T0 + 5 * MINUTE)
    series = downsample(session, selection, path=parse_field("m.t"), every=MINUTE)
    assert series.skipped == 6
    assert [bucket.start for bucket in series.buckets] == [T0, T0 + 2 * MINUTE, T0 + 3 * MINUTE]
    for got, want in zip(series.buckets, expected_buckets(values), strict=True):
        assert (got.start, got.count, got.min, got.max) == (want.start, want.count, want.min, want.max)
        assert got.mean == pytest.approx(want.mean)
    every_thing = downsample(
        session,
        MessageFilter(stream="line", since=T0, until=T0 + 5 * MINUTE),
        path=parse_field("m.t"),
        every=MINUTE,
    )
    assert [bucket.count for bucket in every_thing.buckets] == [3, 1, 1, 2]


def test_array_indexes_and_odd_keys_reach_their_values(session: Session) -> None:
    store(
        session,
        reading(0, {"readings": [{"v-1": 5}, {"v-1": 6}]}),
        reading(1, {"readings": [{"v-1": 7}]}),
        reading(2, [{"v-1": 1}, 2]),
    )
    selection = MessageFilter(since=T0, until=T0 + MINUTE)
    second = downsample(session, selection, path=parse_field("readings[1].v-1"), every=MINUTE)
    assert (second.buckets[0].count, second.buckets[0].max, second.skipped) == (1, 6.0, 2)
    top = downsample(session, selection, path=parse_field("[1]"), every=MINUTE)
    assert (top.buckets[0].count, top.buckets[0].mean) == (1, 2.0)


def test_large_integers_and_fractions_keep_their_value(session: Session) -> None:
    store(session, reading(0, {"v": 2**40}), reading(1, {"v": 0.125}))
    series = downsample(session, MessageFilter(since=T0, until=T0 + 1000), path=parse_field("v"), every=1000)
    assert (series.buckets[0].max, series.buckets[0].min) == (float(2**40), 0.125)


def test_a_series_with_no_numbers_has_no_buckets(session: Session) -> None:
    store(session, reading(0, {"v": "x"}))
    series = downsample(session, MessageFilter(since=T0, until=T0 + 1000), path=parse_field("v"), every=1000)
    assert (list(series.buckets), series.skipped) == ([], 1)
