"""Partitions of things between cloud processes, and the thing a device topic is about."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.cloud.partition import MAX_PROCESSES, Partition, thing_of_topic
from edgewise.protocol import health, logs, resolve
from edgewise.protocol.shadow.document import REQUEST_FILTERS


@pytest.mark.parametrize(
    ("topic", "thing"),
    [
        ("$aws/things/sensor-1/jobs/get", "sensor-1"),
        ("$aws/things/sensor-1/jobs/$next/get", "sensor-1"),
        ("$aws/things/a/shadow/name/config/update", "a"),
        (resolve.request_topic("hub_2"), "hub_2"),
        (health.HEALTH_TOPIC_FILTER.replace("+", "core:1"), "core:1"),
        (health.PRESENCE_TOPIC_FILTER.replace("+", "core"), "core"),
        (logs.LOGS_BATCH_FILTER.replace("+", "logger"), "logger"),
        *((topic_filter.replace("+", "t", 1), "t") for topic_filter in REQUEST_FILTERS),
    ],
)
def test_the_thing_of_a_device_topic_is_the_one_after_things(topic: str, thing: str) -> None:
    assert thing_of_topic(topic) == thing


@pytest.mark.parametrize(
    "topic",
    [
        "dt/sensor/temperature",
        "$aws/things/",
        "$aws/things/sensor",
        "$aws/things//jobs/get",
        "aws/things/a/b",
        "",
    ],
)
def test_a_topic_without_a_thing_has_none(topic: str) -> None:
    assert thing_of_topic(topic) is None


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_topic_gives_a_thing_or_none_and_never_raises(topic: str) -> None:
    thing = thing_of_topic(topic)
    if thing is not None:
        assert topic.startswith(f"$aws/things/{thing}/")
        assert "/" not in thing
        assert thing


@settings(max_examples=100, deadline=None)
@given(st.text(), st.integers(min_value=1, max_value=MAX_PROCESSES))
def test_every_thing_has_exactly_one_owner(thing: str, count: int) -> None:
    owners = [index for index in range(count) if Partition(index, count).owns(thing)]
    assert len(owners) == 1


def test_ownership_is_the_crc32_of_the_name_modulo_the_count() -> None:
    things = [f"thing-{number}" for number in range(40)]
    for thing in things:
        index = zlib.crc32(thing.encode()) % 3
        assert Partition(index, 3).owns(thing)
    assert {index for index in range(3) if any(Partition(index, 3).owns(thing) for thing in things)} == {
        0,
        1,
        2,
    }
    assert all(Partition(0, 1).owns(thing) for thing in things)


@pytest.mark.parametrize(
    ("index", "count", "field"),
    [(0, 0, "count"), (0, MAX_PROCESSES + 1, "count"), (2, 2, "index"), (-1, 2, "index")],
)
def test_a_partition_outside_its_bounds_is_refused_naming_the_field(
    index: int, count: int, field: str
) -> None:
    with pytest.raises(ValueError, match=f"'{field}' is invalid"):
        Partition(index, count)
