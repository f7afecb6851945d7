"""The dynamic group query language: what it selects, and how it names its mistakes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.registry import parse_query


@dataclass
class FakeThing:
    name: str
    thing_type_name: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


BERLIN_3 = FakeThing("sensor-1", "probe", {"site": "berlin", "floor": "3", "temperature": "61.5"})
BERLIN_4 = FakeThing("sensor-2", None, {"site": "berlin", "floor": "4"})
PARIS = FakeThing("gateway-1", "gateway", {"site": "paris", "note": "a b"})
ALL = [BERLIN_3, BERLIN_4, PARIS]


@pytest.mark.parametrize(
    ("query", "selected"),
    [
        ("attributes.site:berlin AND attributes.floor:3", ["sensor-1"]),
        ("attributes.site:berlin OR attributes.site:paris", ["sensor-1", "sensor-2", "gateway-1"]),
        ("attributes.site:berlin AND NOT attributes.floor:3", ["sensor-2"]),
        ("thingName:sensor-*", ["sensor-1", "sensor-2"]),
        ("thingTypeName:gateway", ["gateway-1"]),
        ("attributes.temperature:*", ["sensor-1"]),
        ("attributes.temperature>60", ["sensor-1"]),
        ("attributes.temperature<=61.5", ["sensor-1"]),
        ("attributes.floor<4", ["sensor-1"]),
        ("attributes.floor>=4", ["sensor-2"]),
        ('attributes.note:"a b"', ["gateway-1"]),
        ("(attributes.floor:3 OR attributes.floor:4) AND thingName:*-2", ["sensor-2"]),
        ("attributes.site:berlin OR attributes.site:paris AND attributes.floor:3", ["sensor-1", "sensor-2"]),
        ("attributes.site:Berlin", []),
    ],
)
def test_query_selects_matching_things(query: str, selected: list[str]) -> None:
    parsed = parse_query(query)
    assert [thing.name for thing in ALL if parsed.matches(thing)] == selected


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("", "empty"),
        ("attributes.site:berlin AND", "ends too early"),
        ("attributes.site:berlin attributes.floor:3", "expected AND, OR or the end at position 23"),
        ("(attributes.site:berlin", "never closed"),
        ("site:berlin", "unexpected text at position 0"),
        ("attributes.floor>three", "not a number"),
        ("AND attributes.floor:3", "expected a term"),
    ],
)
def test_invalid_query_is_refused_naming_query_string(query: str, problem: str) -> None:
    with pytest.raises(InvalidRequestError, match=problem) as caught:
        parse_query(query)
    assert caught.value.field == "queryString"


def test_numeric_comparison_skips_values_that_are_not_numbers() -> None:
    assert not parse_query("attributes.site>1").matches(BERLIN_3)
